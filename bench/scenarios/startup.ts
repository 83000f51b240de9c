/**
 * B6: start-up to the first successful query, on the production program: dist/main.js
 * (what `npm start` runs; built first if stale) from spawn until a `tasks` query answers
 * 200 with data, polled every 5 ms; beside the baseline, bench/raw-server.ts bundled the
 * same way (esbuild) and started the same way (`node file.js`), until its /list (the same
 * SQL) answers 200.
 *   external:  DATABASE_URL set to the bench's (already migrated) database; the baseline
 *              connects to it
 *   embedded:  no DATABASE_URL, in a folder whose ./.data/postgres was initialised by a
 *              first, unmeasured start; the baseline starts that cluster's postgres itself
 * Median of BENCH_STARTS (default 5) starts each, ours and the baseline's alternating; each
 * process is stopped (SIGTERM) before the next starts.
 */
import { randomUUID } from "node:crypto";
import { chmod, mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { build } from "esbuild";
import { signHs256 } from "../../src/auth/verifier.js";
import { locateBinaries } from "../../src/db/embedded-binaries.js";
import { postgresSystemUser } from "../../src/db/embedded-root.js";
import { freePort } from "../../src/db/embedded.js";
import { figure, median, type Figure } from "../lib/figure.js";
import { buildDist, graphqlOk, ROOT, START_NODE_FLAGS, startBuilt, waitUntil, type Program } from "../lib/program.js";
import type { BenchContext } from "../lib/scenario.js";

const STARTS = Number(process.env.BENCH_STARTS ?? 5);
const GOAL_EXTERNAL_MS = 1000;
const GOAL_EMBEDDED_MS = 1500;

/** Milestones of a start, in ms after spawn, from the program's own log lines (pino's `time`). */
const MILESTONES: Record<string, RegExp> = {
  "embedded Postgres up": /^Using the embedded Postgres/,
  "migrations checked": /^migrations checked/,
  listening: /^GraphQL API ready/,
};

interface Start {
  totalMs: number;
  milestones: Record<string, number>;
}

/** Spawns, polls `ready` every 5 ms until it holds, and stops the program again. */
async function timeStart(spawnIt: (port: number) => Program, ready: (port: number) => Promise<boolean>): Promise<Start> {
  const port = await freePort();
  const started = performance.now();
  const spawnedAt = Date.now();
  const program = spawnIt(port);
  try {
    await waitUntil(program, () => ready(port), 120_000, "start-up");
    const totalMs = performance.now() - started;
    const milestones: Record<string, number> = {};
    for (const line of program.output().split("\n")) {
      if (!line.startsWith("{")) continue;
      const { time, msg } = JSON.parse(line) as { time?: number; msg?: string };
      const name = Object.keys(MILESTONES).find((key) => MILESTONES[key]!.test(msg ?? ""));
      if (name !== undefined && time !== undefined) milestones[name] = time - spawnedAt;
    }
    return { totalMs, milestones };
  } finally {
    await program.stop();
  }
}

/** "embedded Postgres up at 310 ms, …": where the time of a start went. */
function describe(start: Start): string {
  const parts = Object.entries(start.milestones).map(([name, ms]) => `${name} at ${ms.toFixed(0)} ms`);
  return [...parts, `first 200 at ${start.totalMs.toFixed(0)} ms`].join(", ");
}

/** bench/raw-server.ts as one bundled file, as dist/main.js is: the baseline started the same way. */
async function buildBaseline(dir: string): Promise<string> {
  const outfile = path.join(dir, "raw-server.mjs");
  await build({
    entryPoints: [path.join(ROOT, "bench", "raw-server.ts")],
    outfile,
    bundle: true,
    format: "esm",
    platform: "node",
    target: "node20.19",
    external: ["pg-native"],
    banner: { js: 'import { createRequire as __createRequire } from "node:module"; const require = __createRequire(import.meta.url);' },
    logLevel: "warning",
  });
  return outfile;
}

/** The settings the baseline needs to start the embedded cluster in `folder` itself. */
async function ownPostgresEnv(folder: string): Promise<{ env: Record<string, string>; url: (port: number) => string }> {
  const dataDir = path.join(folder, ".data", "postgres");
  const password = (await readFile(`${dataDir}.password`, "utf8")).trim();
  const { postgres } = await locateBinaries();
  const user = process.getuid?.() === 0 ? await postgresSystemUser() : undefined;
  const env: Record<string, string> = { BENCH_RAW_POSTGRES: postgres, BENCH_RAW_PGDATA: dataDir };
  if (user) Object.assign(env, { BENCH_RAW_PG_UID: String(user.uid), BENCH_RAW_PG_GID: String(user.gid) });
  return { env, url: (port) => `postgresql://postgres:${encodeURIComponent(password)}@127.0.0.1:${port}/app` };
}

interface Side {
  ours: Start[];
  baseline: Start[];
}

async function measure(ctx: BenchContext, label: string, startOurs: () => Promise<Start>, startBaseline: () => Promise<Start>): Promise<Side> {
  ctx.log(`B6: start-up, ${label}, ${STARTS} starts each of dist/main.js and the bare baseline…`);
  const side: Side = { ours: [], baseline: [] };
  // Alternating, so a burst of load elsewhere on the machine falls on both.
  for (let i = 0; i < STARTS; i += 1) {
    side.ours.push(await startOurs());
    side.baseline.push(await startBaseline());
  }
  ctx.log(`  ours ${median(side.ours.map((s) => s.totalMs)).toFixed(0)} ms (${describe(side.ours.at(-1)!)})`);
  ctx.log(`  baseline ${median(side.baseline.map((s) => s.totalMs)).toFixed(0)} ms`);
  return side;
}

function row(id: string, what: string, side: Side, goalMs: number): Figure {
  const ours = median(side.ours.map((s) => s.totalMs));
  const baseline = median(side.baseline.map((s) => s.totalMs));
  const how = `median of ${STARTS} starts of dist/main.js (NODE_ENV=production, bundled), spawn → first 200 with data; baseline: bench/raw-server.ts bundled, spawn → first 200; the last start`;
  return figure({
    id,
    figure: what,
    ours,
    baseline,
    unit: "ms",
    goal: `≤ ${goalMs} ms`,
    met: ours <= goalMs,
    note: `${how}: ${describe(side.ours.at(-1)!)}`,
  });
}

export async function runStartup(ctx: BenchContext): Promise<Figure[]> {
  // What `npm start` runs: built (if stale) as its prestart does.
  const main = await buildDist();
  const secret = randomUUID() + randomUUID();
  const userId = `bench-start-${randomUUID()}`;
  const token = await signHs256(secret, { sub: userId, expiresIn: "1h" });
  const env = { NODE_ENV: "production", AUTH_JWT_SECRET: secret, LOG_LEVEL: "info", HOST: "127.0.0.1" };
  const folder = await mkdtemp(path.join(tmpdir(), "todo-bench-start-"));
  // As root, Postgres runs as the `postgres` user, which must be able to enter the folder.
  await chmod(folder, 0o755);
  try {
    const rawServer = await buildBaseline(folder);
    const ours = (extra: Record<string, string>, cwd?: string) => () =>
      timeStart(
        (port) => startBuilt(main, { env: { ...env, ...extra, PORT: String(port) }, cwd, nodeArgs: START_NODE_FLAGS }),
        (port) => graphqlOk(`http://127.0.0.1:${port}/graphql`, token, "{ tasks(first: 1) { edges { node { id } } } }"),
      );
    const baseline = (extra: (port: number) => Record<string, string>) => () =>
      timeStart(
        (port) => startBuilt(rawServer, { env: { BENCH_RAW_USER: userId, PORT: String(port), ...extra(port) }, nodeArgs: START_NODE_FLAGS }),
        async (port) => (await fetch(`http://127.0.0.1:${port}/list`, { method: "POST", body: "{}" })).status === 200,
      );
    const external = await measure(
      ctx,
      "external database",
      ours({ DATABASE_URL: ctx.url }),
      baseline(() => ({ BENCH_RAW_URL: ctx.url })),
    );
    const first = await ours({}, folder)();
    ctx.log(`  first embedded start (initdb, migrations): ${first.totalMs.toFixed(0)} ms, not counted`);
    const own = await ownPostgresEnv(folder);
    const embedded = await measure(ctx, "embedded database (initialised)", ours({}, folder), async () => {
      const pgPort = await freePort();
      return baseline(() => ({ ...own.env, BENCH_RAW_URL: own.url(pgPort) }))();
    });
    return [
      row("B6", "start-up to first query: external database", external, GOAL_EXTERNAL_MS),
      row("B6", "start-up to first query: embedded, initialised", embedded, GOAL_EMBEDDED_MS),
    ];
  } finally {
    await rm(folder, { recursive: true, force: true });
  }
}
