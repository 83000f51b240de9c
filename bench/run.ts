/**
 * `npm run bench`: every scenario of issue 14, each against a raw baseline on
 * the same database in the same run (BENCH_DATABASE_URL, else a throwaway
 * embedded Postgres). Writes BENCHMARKS.md and bench/results.json, and exits
 * non-zero when a goal is missed. Not part of `npm test` or CI.
 *
 *   npm run bench                       all of B1–B7, then the one-at-a-time list/push medians
 *   npm run bench -- --only B1,B3       a subset (the other rows keep their last figures)
 *   npm run bench -- --only B1 --profile   B1 with `node --cpu-prof` on the API (profile in .scratch/profiles)
 *   npm run bench -- --report-only      BENCHMARKS.md again from bench/results.json and bench/notes.md
 *
 * Knobs: BENCH_DURATION (B1/B2 seconds, 10), BENCH_FANOUT (B3 sizes, 1000,5000,15000),
 * BENCH_TURNS (B4, 40), BENCH_STARTS (B6, 3), BENCH_API_ENV (k=v,… added to the API child's env),
 * BENCH_SCALE (B8: instances=4,sockets=20000,users=2000,rate=100,seconds=60), BENCH_WRITE (B9: seconds=10,rounds=2).
 */
import { mkdir, readFile, rm } from "node:fs/promises";
import os from "node:os";
import { parseArgs } from "node:util";
import pg from "pg";
import { benchDatabase } from "./database.js";
import type { Figure } from "./lib/figure.js";
import { summariseProfile } from "./lib/profile.js";
import { ROOT } from "./lib/program.js";
import { machine, mergeWithPrevious, packageVersions, RESULTS_PATH, writeReports, type Results, type StoredFigure } from "./lib/report.js";
import type { BenchContext, Scenario } from "./lib/scenario.js";
import { runFanoutScenario } from "./scenarios/fanout.js";
import { runHttpLoad } from "./scenarios/http-load.js";
import { runListPush } from "./scenarios/list-push.js";
import { runScaleScenario } from "./scenarios/scale.js";
import { runSearch } from "./scenarios/search.js";
import { runStartup } from "./scenarios/startup.js";
import { runStream } from "./scenarios/stream.js";
import { runTurn } from "./scenarios/turn.js";

// Cheapest and most load-sensitive first; fan-out last, as it leaves the most garbage behind.
const SCENARIOS: Scenario[] = [
  { ids: ["B1", "B2"], run: runHttpLoad },
  { ids: ["B4"], run: runTurn },
  { ids: ["B6"], run: runStartup },
  { ids: ["B7"], run: runStream },
  // Issue 25: search and the overdue filter among one user's 10,000 tasks.
  { ids: ["B10"], run: runSearch },
  { ids: ["list", "push"], run: runListPush },
  { ids: ["B3", "B5"], run: runFanoutScenario },
  // Issue 27: the realtime transports, four API processes and 20,000 sockets; the heaviest, so last.
  { ids: ["B8", "B9"], run: runScaleScenario },
];
const ALL = SCENARIOS.flatMap((s) => s.ids);

const { values } = parseArgs({
  options: { only: { type: "string" }, profile: { type: "boolean", default: false }, "report-only": { type: "boolean", default: false } },
});
if (values["report-only"]) {
  // BENCHMARKS.md again from bench/results.json and bench/notes.md, measuring nothing (after editing the notes).
  await writeReports(JSON.parse(await readFile(RESULTS_PATH, "utf8")) as Results);
  process.exit(0);
}
const wanted = new Set(
  values.only
    ? values.only
        .split(",")
        .map((id) => id.trim())
        .filter(Boolean)
    : ALL,
);
const unknown = [...wanted].filter((id) => !ALL.includes(id));
if (unknown.length > 0) {
  console.error(`Unknown scenario ${unknown.join(", ")}; known: ${ALL.join(", ")}`);
  process.exit(2);
}

const started = Date.now();
const loadavgAtStart = os.loadavg();
const log = (message: string) => console.log(`[${((Date.now() - started) / 1000).toFixed(0).padStart(4)} s] ${message}`);
const database = await benchDatabase("todo-bench-");
const ctx: BenchContext = { url: database.url, log };
if (values.profile) {
  ctx.cpuProfDir = `${ROOT}.scratch/profiles`;
  await rm(ctx.cpuProfDir, { recursive: true, force: true });
  await mkdir(ctx.cpuProfDir, { recursive: true });
  log(`profiling the API child into ${ctx.cpuProfDir}`);
}

const sql = new pg.Client({ connectionString: database.url });
await sql.connect();
const postgres = (await sql.query<{ server_version: string }>("SHOW server_version")).rows[0]!.server_version;
await sql.end();

const figures: StoredFigure[] = [];
for (const scenario of SCENARIOS) {
  const ids = new Set(scenario.ids.filter((id) => wanted.has(id)));
  if (ids.size === 0) continue;
  const loadavg = os.loadavg();
  log(`${[...ids].join(", ")} (load ${loadavg.map((v) => v.toFixed(2)).join(" ")})`);
  let result: Figure[];
  try {
    result = await scenario.run(ctx, ids);
  } catch (error) {
    // One broken scenario must not lose the others' figures in an unattended run: it is a missed goal.
    log(`  failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`);
    result = [...ids].map((id) => ({
      id,
      figure: "scenario failed",
      ours: null,
      baseline: null,
      ratio: null,
      unit: "",
      goal: "runs",
      status: "missed",
      note: String(error).slice(0, 300),
    }));
  }
  const measuredAt = new Date().toISOString();
  figures.push(...result.map((f) => ({ ...f, measuredAt, loadavg })));
}
await database.close();

if (ctx.cpuProfDir) {
  const { file, frames, origins } = await summariseProfile(ctx.cpuProfDir, { fromMs: ctx.profileFromMs, top: 25 });
  log(`profile of the API child under load (start-up left out), busy time only: ${file}`);
  console.table(frames.map((f) => ({ "self %": f.selfPercent.toFixed(1), frame: f.name })));
  console.table(origins.map((f) => ({ "self %": f.selfPercent.toFixed(1), where: f.name })));
}

const all = mergeWithPrevious(figures, wanted);
await writeReports({
  generatedAt: new Date().toISOString(),
  command: `npm run bench${values.only ? ` -- --only ${values.only}` : ""}`,
  machine: machine(loadavgAtStart),
  node: process.version,
  postgres: `PostgreSQL ${postgres}`,
  database: process.env.BENCH_DATABASE_URL ? "BENCH_DATABASE_URL" : "embedded",
  packages: packageVersions(),
  figures: all,
});

console.table(
  figures.map((f) => ({
    id: f.id,
    figure: f.figure,
    ours: f.ours === null ? "—" : Number(f.ours.toFixed(2)),
    baseline: f.baseline === null ? "—" : Number(f.baseline.toFixed(2)),
    unit: f.unit,
    ratio: f.ratio === null ? "—" : Number(f.ratio.toFixed(2)),
    goal: f.goal,
    status: f.status,
  })),
);
log(`wrote BENCHMARKS.md and bench/results.json in ${((Date.now() - started) / 1000).toFixed(0)} s`);
// Exit explicitly: a stray handle (a pool, a timer) in a scenario must not hang an unattended run.
process.exit(figures.some((f) => f.status === "missed") ? 1 : 0);
