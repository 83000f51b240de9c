/**
 * `npm run soak`: minutes of mixed load on the real API with 500 graphql-ws
 * subscribers and one database restart in the middle (bench/soak-run.ts).
 * Outside CI and outside `npm run bench`: it takes minutes and measures a
 * whole system, not a ratio. Loopback only.
 *
 *   npm run soak                                   # 5 minutes
 *   npm run soak -- --duration 60s --subscribers 100
 *
 * Flags (each also an environment variable; a flag wins):
 *   --duration     SOAK_DURATION      how long the load runs (5m; "90s", "1500ms", bare seconds)
 *   --rate         SOAK_RATE          requests started per second (30)
 *   --subscribers  SOAK_SUBSCRIBERS   graphql-ws subscriptions, half taskChanged, half messageAdded (500)
 *   --users        SOAK_USERS         users the load and the subscribers are spread over (100)
 *   --outage       SOAK_OUTAGE        how long the database stays down (5s)
 *   --out          SOAK_OUT           where the JSON figures go (bench/soak-results.json; "-": nowhere)
 *   --runtime      SOAK_RUNTIME       how the API runs: "bundle" (default), bench/api-server.ts bundled
 *                                     with scripts/build.mjs's esbuild options and run by plain
 *                                     `node --expose-gc`, as `npm start` runs dist/main.js; or "tsx",
 *                                     the TypeScript under tsx (which turns source maps on)
 *   --heap-snapshots SOAK_HEAP_SNAPSHOTS  a folder for two heap snapshots of the API after a full GC,
 *                                     at a third of the run and at the end (none by default);
 *                                     compare them with `npx tsx bench/heap-diff.ts a b`
 *
 * Exits 1 when an event is lost, duplicated or leaked, an acknowledged write
 * is missing, fewer than 99% of the requests outside the outage succeed, or
 * the heap after a full GC (measured every 15 s) is not flat within 10% over
 * the last two thirds of the run.
 */
import { writeFile } from "node:fs/promises";
import { parseArgs } from "node:util";
import { runSoak } from "./soak-run.js";
import { formatReport, summarize } from "./soak-report.js";

/** "5m", "90s", "1500ms", or bare seconds. */
export function parseDuration(value: string, name: string): number {
  const match = /^(\d+(?:\.\d+)?)(ms|s|m)?$/.exec(value.trim());
  if (!match) throw new Error(`${name} must be a duration like 90s, 5m or 1500ms (got "${value}")`);
  const amount = Number(match[1]);
  return Math.round(match[2] === "ms" ? amount : match[2] === "m" ? amount * 60_000 : amount * 1000);
}

function positiveInt(value: string, name: string): number {
  const number = Number(value);
  if (!Number.isInteger(number) || number < 1) throw new Error(`${name} must be a positive whole number (got "${value}")`);
  return number;
}

function runtime(value: string): "bundle" | "tsx" {
  if (value !== "bundle" && value !== "tsx") throw new Error(`--runtime (SOAK_RUNTIME) must be "bundle" or "tsx" (got "${value}")`);
  return value;
}

/** A bad flag or variable: its message, not a stack. */
function usageError(error: unknown): never {
  console.error(`npm run soak: ${(error as Error).message}`);
  process.exit(2);
}

const { values } = (() => {
  try {
    return parseArgs({
      options: {
        duration: { type: "string" },
        rate: { type: "string" },
        subscribers: { type: "string" },
        users: { type: "string" },
        outage: { type: "string" },
        out: { type: "string" },
        runtime: { type: "string" },
        "heap-snapshots": { type: "string" },
      },
    });
  } catch (error) {
    return usageError(error);
  }
})();
const setting = (flag: string | undefined, env: string, fallback: string) => flag ?? process.env[env] ?? fallback;

const options = (() => {
  try {
    return {
      durationMs: parseDuration(setting(values.duration, "SOAK_DURATION", "5m"), "--duration (SOAK_DURATION)"),
      rate: positiveInt(setting(values.rate, "SOAK_RATE", "30"), "--rate (SOAK_RATE)"),
      subscribers: positiveInt(setting(values.subscribers, "SOAK_SUBSCRIBERS", "500"), "--subscribers (SOAK_SUBSCRIBERS)"),
      users: positiveInt(setting(values.users, "SOAK_USERS", "100"), "--users (SOAK_USERS)"),
      outageMs: parseDuration(setting(values.outage, "SOAK_OUTAGE", "5s"), "--outage (SOAK_OUTAGE)"),
      runtime: runtime(setting(values.runtime, "SOAK_RUNTIME", "bundle")),
    };
  } catch (error) {
    return usageError(error);
  }
})();
const out = setting(values.out, "SOAK_OUT", "bench/soak-results.json");
const command = ["npm run soak", ...process.argv.slice(2)].join(" ").replace(/^npm run soak (?=-)/, "npm run soak -- ");

const heapSnapshots = setting(values["heap-snapshots"], "SOAK_HEAP_SNAPSHOTS", "");
const run = await runSoak({ ...options, ...(heapSnapshots === "" ? {} : { heapSnapshots }), log: (line) => console.log(line) });
const summary = summarize(run, command);
console.log(formatReport(summary));
if (out !== "-") {
  await writeFile(out, `${JSON.stringify(summary, null, 2)}\n`);
  console.log(`\nFigures written to ${out}`);
}
process.exit(summary.pass ? 0 : 1);
