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
import { signHs256 } from "../../src/auth.js";
import { freePort } from "../../src/db/embedded.js";
import { figure, median, type Figure } from "../lib/figure.js";
import { graphqlOk, startProgram, waitUntil } from "../lib/program.js";
import type { BenchContext } from "../lib/scenario.js";

const STARTS = Number(process.env.BENCH_STARTS ?? 3);
const GOAL_EMBEDDED_MS = 1500;

async function timeStart(env: Record<string, string>, cwd: string | undefined, token: string): Promise<number> {
  const port = await freePort();
  const started = performance.now();
  const program = startProgram("src/main.ts", { env: { ...env, PORT: String(port), HOST: "127.0.0.1" }, cwd });
  try {
    await waitUntil(program, () => graphqlOk(`http://127.0.0.1:${port}/graphql`, token, "{ tasks(first: 1) { edges { node { id } } } }"), 120_000, "start-up");
    return performance.now() - started;
  } finally {
    await program.stop();
  }
}

export async function runStartup(ctx: BenchContext): Promise<Figure[]> {
  const secret = randomUUID() + randomUUID();
  const token = await signHs256(secret, { sub: `bench-start-${randomUUID()}`, expiresIn: "1h" });
  const env = { NODE_ENV: "production", AUTH_JWT_SECRET: secret, LOG_LEVEL: "info" };

  ctx.log(`B6: start-up, external database, ${STARTS} starts…`);
  const external: number[] = [];
  for (let i = 0; i < STARTS; i += 1) external.push(await timeStart({ ...env, DATABASE_URL: ctx.url }, undefined, token));

  ctx.log(`B6: start-up, embedded database (initialised by a first start), ${STARTS} starts…`);
  const folder = await mkdtemp(path.join(tmpdir(), "todo-bench-start-"));
  // As root, Postgres runs as the `postgres` user, which must be able to enter the folder.
  await chmod(folder, 0o755);
  const embedded: number[] = [];
  try {
    const first = await timeStart(env, folder, token);
    ctx.log(`  first start (initdb, migrations): ${first.toFixed(0)} ms, not counted`);
    for (let i = 0; i < STARTS; i += 1) embedded.push(await timeStart(env, folder, token));
  } finally {
    await rm(folder, { recursive: true, force: true });
  }
  ctx.log(`  external ${median(external).toFixed(0)} ms, embedded ${median(embedded).toFixed(0)} ms`);
  const note = `median of ${STARTS} starts of src/main.ts (NODE_ENV=production, through tsx), spawn → first 200 with data`;
  return [
    figure({ id: "B6", figure: "start-up to first query: external database", ours: median(external), baseline: null, unit: "ms", goal: "—", note }),
    figure({ id: "B6", figure: "start-up to first query: embedded, initialised", ours: median(embedded), baseline: null, unit: "ms", goal: `≤ ${GOAL_EMBEDDED_MS} ms`, met: median(embedded) <= GOAL_EMBEDDED_MS, note }),
  ];
}
