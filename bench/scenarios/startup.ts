/**
 * B6: start-up to the first successful query, measured on the real program:
 * src/main.ts (what `npm start` runs, through tsx's loader) from spawn until a
 * `tasks` query answers 200 with data, polled every 5 ms.
 *   external:  DATABASE_URL set to the bench's (already migrated) database
 *   embedded:  no DATABASE_URL, in a folder whose ./.data/postgres was
 *              initialised by a first, unmeasured start
 * Median of BENCH_STARTS (default 3) starts each; the process is stopped (SIGTERM) in between.
 */
import { randomUUID } from "node:crypto";
import { chmod, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { signHs256 } from "../../src/auth/verifier.js";
import { freePort } from "../../src/db/embedded.js";
import { figure, median, type Figure } from "../lib/figure.js";
import { graphqlOk, startProgram, waitUntil } from "../lib/program.js";
import type { BenchContext } from "../lib/scenario.js";

const STARTS = Number(process.env.BENCH_STARTS ?? 3);
const GOAL_EMBEDDED_MS = 1500;

/** Milestones of a start, in ms after spawn, from the program's own log lines (pino's `time`). */
const MILESTONES: Record<string, RegExp> = {
  "embedded Postgres up": /^Using the embedded Postgres/,
  "migrations checked": /^migrations checked/,
  "listening": /^GraphQL API ready/,
};

interface Start {
  totalMs: number;
  milestones: Record<string, number>;
}

async function timeStart(env: Record<string, string>, cwd: string | undefined, token: string): Promise<Start> {
  const port = await freePort();
  const started = performance.now();
  const spawnedAt = Date.now();
  const program = startProgram("src/main.ts", { env: { ...env, PORT: String(port), HOST: "127.0.0.1" }, cwd });
  try {
    await waitUntil(program, () => graphqlOk(`http://127.0.0.1:${port}/graphql`, token, "{ tasks(first: 1) { edges { node { id } } } }"), 120_000, "start-up");
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

/** "embedded Postgres up 3,100 ms, migrations checked 3,400 ms, …": where the time of a start went. */
function describe(start: Start): string {
  const parts = Object.entries(start.milestones).map(([name, ms]) => `${name} at ${ms.toFixed(0)} ms`);
  return [...parts, `first 200 at ${start.totalMs.toFixed(0)} ms`].join(", ");
}

export async function runStartup(ctx: BenchContext): Promise<Figure[]> {
  const secret = randomUUID() + randomUUID();
  const token = await signHs256(secret, { sub: `bench-start-${randomUUID()}`, expiresIn: "1h" });
  const env = { NODE_ENV: "production", AUTH_JWT_SECRET: secret, LOG_LEVEL: "info" };

  ctx.log(`B6: start-up, external database, ${STARTS} starts…`);
  const external: Start[] = [];
  for (let i = 0; i < STARTS; i += 1) external.push(await timeStart({ ...env, DATABASE_URL: ctx.url }, undefined, token));

  ctx.log(`B6: start-up, embedded database (initialised by a first start), ${STARTS} starts…`);
  const folder = await mkdtemp(path.join(tmpdir(), "todo-bench-start-"));
  // As root, Postgres runs as the `postgres` user, which must be able to enter the folder.
  await chmod(folder, 0o755);
  const embedded: Start[] = [];
  try {
    const first = await timeStart(env, folder, token);
    ctx.log(`  first start (initdb, migrations): ${first.totalMs.toFixed(0)} ms, not counted`);
    for (let i = 0; i < STARTS; i += 1) embedded.push(await timeStart(env, folder, token));
  } finally {
    await rm(folder, { recursive: true, force: true });
  }
  const externalMs = median(external.map((s) => s.totalMs));
  const embeddedMs = median(embedded.map((s) => s.totalMs));
  ctx.log(`  external ${externalMs.toFixed(0)} ms (${describe(external.at(-1)!)})`);
  ctx.log(`  embedded ${embeddedMs.toFixed(0)} ms (${describe(embedded.at(-1)!)})`);
  const how = `median of ${STARTS} starts of src/main.ts (NODE_ENV=production, through tsx), spawn → first 200 with data; the last start`;
  return [
    figure({ id: "B6", figure: "start-up to first query: external database", ours: externalMs, baseline: null, unit: "ms", goal: "—", note: `${how}: ${describe(external.at(-1)!)}` }),
    figure({
      id: "B6",
      figure: "start-up to first query: embedded, initialised",
      ours: embeddedMs,
      baseline: null,
      unit: "ms",
      goal: `≤ ${GOAL_EMBEDDED_MS} ms`,
      met: embeddedMs <= GOAL_EMBEDDED_MS,
      note: `${how}: ${describe(embedded.at(-1)!)}`,
    }),
  ];
}
