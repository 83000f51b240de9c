import { existsSync, readFileSync } from "node:fs";
import { writeFile } from "node:fs/promises";
import os from "node:os";
import type { Figure } from "./figure.js";
import { ROOT } from "./program.js";

const PACKAGES = [
  "graphql-yoga",
  "graphql",
  "@pothos/core",
  "@pothos/plugin-prisma",
  "@prisma/client",
  "@prisma/adapter-pg",
  "pg",
  "graphql-ws",
  "ws",
  "jose",
  "cohere-ai",
  "autocannon",
];

/** A figure as stored: with when it was measured and the machine's load then. */
export interface StoredFigure extends Figure {
  measuredAt: string;
  /** os.loadavg() (1, 5, 15 min) when its scenario started. */
  loadavg: number[];
}

export interface Results {
  generatedAt: string;
  command: string;
  machine: { cores: number; cpu: string; memoryGiB: number; platform: string; loadavgAtStart: number[]; loadavgAtEnd: number[] };
  node: string;
  postgres: string;
  database: string;
  packages: Record<string, string>;
  figures: StoredFigure[];
}

export const RESULTS_PATH = `${ROOT}/bench/results.json`;
export const MARKDOWN_PATH = `${ROOT}/BENCHMARKS.md`;
/** Hand-written sections (what we tried, the profile, missed goals), kept across runs. */
const NOTES_PATH = `${ROOT}/bench/notes.md`;

/** Installed versions, read from node_modules (some packages do not export their package.json). */
export function packageVersions(): Record<string, string> {
  return Object.fromEntries(
    PACKAGES.map((name) => {
      const file = `${ROOT}/node_modules/${name}/package.json`;
      return [name, existsSync(file) ? (JSON.parse(readFileSync(file, "utf8")) as { version: string }).version : "not installed"];
    }),
  );
}

export function machine(loadavgAtStart: number[]): Results["machine"] {
  const cpus = os.cpus();
  return {
    cores: cpus.length,
    cpu: cpus[0]?.model.trim() ?? "unknown",
    memoryGiB: Math.round((os.totalmem() / 2 ** 30) * 10) / 10,
    platform: `${os.type()} ${os.release()} ${os.arch()}`,
    loadavgAtStart,
    loadavgAtEnd: os.loadavg(),
  };
}

/** A subset run keeps the other scenarios' figures from the last results, each with its own date and load. */
export function mergeWithPrevious(figures: StoredFigure[], ran: ReadonlySet<string>): StoredFigure[] {
  if (!existsSync(RESULTS_PATH)) return figures;
  const previous = (JSON.parse(readFileSync(RESULTS_PATH, "utf8")) as Results).figures.filter((f) => !ran.has(f.id));
  return [...previous, ...figures];
}

const ORDER = ["B1", "B2", "B3", "B4", "B5", "B6", "B7", "B8", "B9", "list", "push"];

const number = (value: number | null, unit = ""): string => {
  if (value === null || Number.isNaN(value)) return "—";
  const digits = Math.abs(value) >= 100 || Number.isInteger(value) ? 0 : Math.abs(value) >= 10 ? 1 : 2;
  return `${value.toLocaleString("en", { maximumFractionDigits: digits, minimumFractionDigits: digits })}${unit ? ` ${unit}` : ""}`;
};
const load = (values: number[]) => values.map((v) => v.toFixed(2)).join(" / ");
const STATUS = { met: "✅ met", missed: "❌ missed", pending: "⏳ pending", info: "" } as const;

export async function writeReports(results: Results): Promise<void> {
  results.figures.sort((a, b) => ORDER.indexOf(a.id) - ORDER.indexOf(b.id));
  await writeFile(RESULTS_PATH, `${JSON.stringify(results, null, 2)}\n`);

  const lines: string[] = [
    "# Benchmarks",
    "",
    "Written by `npm run bench` (bench/run.ts); the same figures are in [bench/results.json](bench/results.json).",
    "Every speed figure is measured against a raw baseline on the same Postgres in the same run, so a noisy",
    "machine moves both sides; absolute times are reported, never asserted. Goals come from issue 14.",
    "",
    `- Run: ${results.generatedAt}, \`${results.command}\``,
    `- Machine: ${results.machine.cores} cores (${results.machine.cpu}), ${results.machine.memoryGiB} GiB, ${results.machine.platform}`,
    `- Load average (1 / 5 / 15 min): ${load(results.machine.loadavgAtStart)} at the start, ${load(results.machine.loadavgAtEnd)} at the end; per scenario in the last column`,
    `- Node ${results.node}; ${results.postgres} (${results.database})`,
    `- Packages: ${Object.entries(results.packages)
      .map(([name, version]) => `${name} ${version}`)
      .join(", ")}`,
    "",
    "| Id | Figure | Ours | Baseline | Ratio | Goal | Met | Load (1 min) |",
    "|---|---|---:|---:|---:|---|---|---:|",
  ];
  for (const f of results.figures) {
    const ratio = f.ratio === null ? "—" : `${f.ratio.toFixed(2)}×`;
    lines.push(
      `| ${f.id} | ${f.figure} | ${number(f.ours, f.unit)} | ${number(f.baseline, f.baseline === null ? "" : f.unit)} | ${ratio} | ${f.goal} | ${STATUS[f.status]} | ${f.loadavg[0]?.toFixed(2) ?? ""} |`,
    );
  }
  const notes = results.figures.filter((f) => f.note);
  if (notes.length > 0) {
    lines.push("", "How each was measured:", "");
    const seen = new Set<string>();
    for (const f of notes) {
      const text = `- **${f.id}** ${f.figure}: ${f.note}`;
      if (!seen.has(f.note!)) lines.push(text);
      seen.add(f.note!);
    }
  }
  // A scenario meets its goals when none of its rows missed; the missed rows are named.
  const ids = [...new Set(results.figures.filter((f) => f.status === "met" || f.status === "missed").map((f) => f.id))];
  const missedRows = results.figures.filter((f) => f.status === "missed");
  const met = ids.filter((id) => !missedRows.some((f) => f.id === id));
  lines.push("", `Goals met: ${met.join(", ") || "none"}.`, `Missed: ${missedRows.map((f) => `${f.id} ${f.figure}`).join("; ") || "none"}.`);
  if (existsSync(NOTES_PATH)) lines.push("", readFileSync(NOTES_PATH, "utf8").trim());
  await writeFile(MARKDOWN_PATH, `${lines.join("\n")}\n`);
}
