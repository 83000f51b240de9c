/**
 * B1 and B2: throughput and p99 under load (autocannon, 50 connections, 10 s),
 * the real API (src/main.ts as `npm start` runs it in production) against
 * bench/raw-server.ts (node:http + pg, the same SQL, the same JSON), both child
 * processes on the same database, one after the other, each after a warm-up.
 *   B1  tasks(first: 20)  vs  SELECT … LIMIT 21
 *   B2  addTask           vs  INSERT … RETURNING (the NOTIFY and task_events triggers fire in both)
 * Both documents are trusted ones (TRUSTED_DOCUMENTS_FILE), sent as their text, as the web client sends its own.
 * B2 also measures what provenance costs (trigger-cost.ts).
 */
import { randomUUID } from "node:crypto";
import pg from "pg";
import { signHs256 } from "../../src/auth/verifier.js";
import { figure, type Figure } from "../lib/figure.js";
import { CONNECTIONS, DURATION_S, load, WARMUP_S, type Load } from "../lib/load.js";
import { startApi, startRaw } from "../lib/servers.js";
import { trustedManifest } from "../lib/trusted-manifest.js";
import type { BenchContext } from "../lib/scenario.js";
import { triggerCost } from "./trigger-cost.js";

export { load, type Load } from "../lib/load.js";

const GOAL = 0.5;

export const LIST = "{ tasks(first: 20) { edges { node { id title completed createdAt } } } }";
export const ADD = "mutation Add($title: String!) { addTask(input: { title: $title }) { id title completed createdAt } }";

/** Runs both sides of one scenario: warm-up, then measured; the API first, then the raw server. */
async function compare(ctx: BenchContext, api: { url: string; token: string; pid?: number }, rawServer: { url: string; pid?: number }, body: string) {
  await load(api.url, body, { authorization: `Bearer ${api.token}` }, WARMUP_S);
  const ours = await load(api.url, body, { authorization: `Bearer ${api.token}` }, DURATION_S, api.pid);
  await load(rawServer.url, body, {}, WARMUP_S);
  const raw = await load(rawServer.url, body, {}, DURATION_S, rawServer.pid);
  ctx.log(`  ours ${ours.rps.toFixed(0)} req/s p99 ${ours.p99Ms} ms; raw ${raw.rps.toFixed(0)} req/s p99 ${raw.p99Ms} ms`);
  return { ours, raw };
}

export async function runHttpLoad(ctx: BenchContext, ids: ReadonlySet<string>): Promise<Figure[]> {
  const userId = `bench-load-${randomUUID()}`;
  const sql = new pg.Client({ connectionString: ctx.url });
  await sql.connect();
  await sql.query("INSERT INTO tasks (user_id, title) SELECT $1, 'Task ' || i FROM generate_series(1, 200) AS i", [userId]);
  let token = "";
  const api = await startApi({
    databaseUrl: ctx.url,
    token: async (secret) => (token = await signHs256(secret, { sub: userId, expiresIn: "1h" })),
    cpuProfDir: ctx.cpuProfDir,
    // Both operations registered as a deployment registers its clients' (the web client's are built in).
    env: { TRUSTED_DOCUMENTS_FILE: trustedManifest([LIST, ADD]) },
  });
  ctx.profileFromMs = api.startupMs;
  const raw = await startRaw(ctx.url, userId);
  const figures: Figure[] = [];
  try {
    if (ids.has("B1")) {
      ctx.log(`B1: tasks(first: 20), ${CONNECTIONS} connections, ${DURATION_S} s each…`);
      const { ours, raw: base } = await compare(
        ctx,
        { url: api.url, token, pid: api.program.child.pid },
        { url: `${raw.baseUrl}/list`, pid: raw.program.child.pid },
        JSON.stringify({ query: LIST }),
      );
      figures.push(...rows("B1", "tasks(first: 20)", ours, base));
    }
    if (ids.has("B2")) {
      ctx.log(`B2: addTask, ${CONNECTIONS} connections, ${DURATION_S} s each…`);
      const body = JSON.stringify({ query: ADD, variables: { title: "bench" } });
      const { ours, raw: base } = await compare(
        ctx,
        { url: api.url, token, pid: api.program.child.pid },
        { url: `${raw.baseUrl}/add`, pid: raw.program.child.pid },
        body,
      );
      figures.push(...rows("B2", "addTask", ours, base));
      const sides = {
        api: { url: api.url, headers: { authorization: `Bearer ${token}` }, pid: api.program.child.pid },
        raw: { url: `${raw.baseUrl}/add`, headers: {}, pid: raw.program.child.pid },
      };
      figures.push(...(await triggerCost(ctx, sql, sides, body)));
    }
  } finally {
    await api.program.stop();
    await raw.program.stop();
    await sql.query("DELETE FROM tasks WHERE user_id = $1", [userId]).catch(() => {});
    await sql.query("DELETE FROM task_events WHERE user_id = $1", [userId]).catch(() => {});
    await sql.end();
  }
  return figures;
}

function rows(id: string, what: string, ours: Load, base: Load): Figure[] {
  return [
    figure({
      id,
      figure: `${what}: throughput`,
      ours: ours.rps,
      baseline: base.rps,
      unit: "req/s",
      goal: `ratio ≥ ${GOAL}`,
      met: ours.rps / base.rps >= GOAL,
      note: `autocannon, ${CONNECTIONS} connections, ${DURATION_S} s after a ${WARMUP_S} s warm-up, the document a trusted one (TRUSTED_DOCUMENTS_FILE) sent as its text; ${ours.requests} answers (${ours.errors} connection errors or timeouts) vs ${base.requests} (${base.errors})`,
    }),
    figure({
      id,
      figure: `${what}: server CPU per request`,
      ours: ours.cpuMsPerRequest,
      baseline: base.cpuMsPerRequest,
      unit: "ms",
      goal: "—",
      note: "user + system CPU time of the server process (/proc) over the measured run, divided by the answers: steadier than throughput on a shared machine",
    }),
    figure({ id, figure: `${what}: p99 latency`, ours: ours.p99Ms, baseline: base.p99Ms, unit: "ms", goal: "—" }),
    figure({ id, figure: `${what}: p50 latency`, ours: ours.p50Ms, baseline: base.p50Ms, unit: "ms", goal: "—" }),
  ];
}
