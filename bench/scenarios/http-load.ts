/**
 * B1 and B2: throughput and p99 under load (autocannon, 50 connections, 10 s),
 * the real API (src/main.ts as `npm start` runs it in production) against
 * bench/raw-server.ts (node:http + pg, the same SQL, the same JSON), both child
 * processes on the same database, one after the other, each after a warm-up.
 *   B1  tasks(first: 20)  vs  SELECT … LIMIT 21
 *   B2  addTask           vs  INSERT … RETURNING (the NOTIFY trigger fires in both)
 */
import { randomUUID } from "node:crypto";
import autocannon from "autocannon";
import pg from "pg";
import { signHs256 } from "../../src/auth/verifier.js";
import { cpuTimeMs } from "../lib/cpu.js";
import { figure, type Figure } from "../lib/figure.js";
import { startApi, startRaw } from "../lib/servers.js";
import type { BenchContext } from "../lib/scenario.js";

const CONNECTIONS = 50;
const DURATION_S = Number(process.env.BENCH_DURATION ?? 10);
const WARMUP_S = 2;
const GOAL = 0.5;

export const LIST = "{ tasks(first: 20) { edges { node { id title completed createdAt } } } }";
export const ADD = "mutation Add($title: String!) { addTask(input: { title: $title }) { id title completed createdAt } }";

export interface Load {
  rps: number;
  p50Ms: number;
  p99Ms: number;
  requests: number;
  /** Connection errors, timeouts (10 s) included: reported, as an overloaded machine has some. */
  errors: number;
  /** The server process's CPU time (user + system) per answered request, when /proc tells. */
  cpuMsPerRequest: number | null;
}

export async function load(url: string, body: string, headers: Record<string, string>, seconds: number, serverPid?: number, connections = CONNECTIONS): Promise<Load> {
  const cpuBefore = cpuTimeMs(serverPid);
  const result = await autocannon({ url, method: "POST", body, headers: { "content-type": "application/json", ...headers }, connections, duration: seconds });
  // Every answer must be a 200; a fast 500 is not throughput.
  if (result.non2xx > 0) throw new Error(`${url}: ${result.non2xx} non-2xx answers under load`);
  const cpuAfter = cpuTimeMs(serverPid);
  const cpuMsPerRequest = cpuBefore === undefined || cpuAfter === undefined || result["2xx"] === 0 ? null : (cpuAfter - cpuBefore) / result["2xx"];
  return { rps: result["2xx"] / result.duration, p50Ms: result.latency.p50, p99Ms: result.latency.p99, requests: result["2xx"], errors: result.errors, cpuMsPerRequest };
}

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
  });
  ctx.profileFromMs = api.startupMs;
  const raw = await startRaw(ctx.url, userId);
  const figures: Figure[] = [];
  try {
    if (ids.has("B1")) {
      ctx.log(`B1: tasks(first: 20), ${CONNECTIONS} connections, ${DURATION_S} s each…`);
      const { ours, raw: base } = await compare(ctx, { url: api.url, token, pid: api.program.child.pid }, { url: `${raw.baseUrl}/list`, pid: raw.program.child.pid }, JSON.stringify({ query: LIST }));
      figures.push(...rows("B1", "tasks(first: 20)", ours, base));
    }
    if (ids.has("B2")) {
      ctx.log(`B2: addTask, ${CONNECTIONS} connections, ${DURATION_S} s each…`);
      const body = JSON.stringify({ query: ADD, variables: { title: "bench" } });
      const { ours, raw: base } = await compare(ctx, { url: api.url, token, pid: api.program.child.pid }, { url: `${raw.baseUrl}/add`, pid: raw.program.child.pid }, body);
      figures.push(...rows("B2", "addTask", ours, base));
    }
  } finally {
    await api.program.stop();
    await raw.program.stop();
    await sql.query("DELETE FROM tasks WHERE user_id = $1", [userId]).catch(() => {});
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
      note: `autocannon, ${CONNECTIONS} connections, ${DURATION_S} s after a ${WARMUP_S} s warm-up; ${ours.requests} answers (${ours.errors} connection errors or timeouts) vs ${base.requests} (${base.errors})`,
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
