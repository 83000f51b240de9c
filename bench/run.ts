/**
 * `npm run bench`: speed goals as ratios against a raw baseline measured in
 * the same run, on the same database, so a noisy machine moves both sides.
 * Uses BENCH_DATABASE_URL (a server you have) or an embedded Postgres.
 *
 * Each baseline does the same work with the least code: no GraphQL, no ORM, no auth.
 *   list:  GraphQL `tasks(first: 50)` over HTTP    vs  a bare node:http handler running the SELECT with pg
 *   push:  INSERT → taskChanged over graphql-ws   vs  INSERT → LISTEN → SELECT the row → a bare ws message
 *
 * Then fan-out (bench/fanout.ts), measured in absolute terms against its goals:
 * N sockets with one taskChanged subscription each over 10 users, for each N in
 * BENCH_FANOUT (default 1000,5000; e.g. BENCH_FANOUT=1000,5000,15000, or none).
 * 15,000 sockets need `ulimit -n` above 15,000 for this process and the server's.
 */
import { randomUUID } from "node:crypto";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { createClient } from "graphql-ws";
import pg from "pg";
import { WebSocket, WebSocketServer } from "ws";
import { buildApp } from "../src/app.js";
import { createVerifier, signHs256 } from "../src/auth.js";
import { createDb } from "../src/db/client.js";
import { loadConfig } from "../src/config.js";
import { benchDatabase } from "./database.js";
import { createLogger } from "../src/logger.js";
import { FANOUT_GOALS, runFanout, type FanoutResult } from "./fanout.js";

const GOALS = { list: 3, push: 3 };
const ITERATIONS = Number(process.env.BENCH_ITERATIONS ?? 200);

function median(samples: number[]): number {
  const sorted = [...samples].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] ?? Number.NaN;
}

async function time(iterations: number, run: () => Promise<void>): Promise<number> {
  for (let i = 0; i < Math.min(20, iterations); i += 1) await run(); // warm-up
  const samples: number[] = [];
  for (let i = 0; i < iterations; i += 1) {
    const start = performance.now();
    await run();
    samples.push(performance.now() - start);
  }
  return median(samples);
}

const database = await benchDatabase("todo-bench-");
const url = database.url;

const secret = randomUUID() + randomUUID();
const logger = createLogger("silent");
const db = createDb({ url, driver: "pg", poolSize: 5, connectionTimeoutMs: 5000 });
const app = buildApp({
  db,
  logger,
  verifier: createVerifier({
    jwtSecret: secret,
    jwksUrl: undefined,
    issuer: undefined,
    audience: undefined,
    maxTokenAgeSeconds: undefined,
  }),
  graphiql: false,
  http: loadConfig({ NODE_ENV: "production", AUTH_JWT_SECRET: secret }).http,
  listenUrl: url,
  assistant: { model: undefined, modelName: "none", maxSteps: 1, callTimeoutMs: 1, turnTimeoutMs: 1, clock: () => new Date(), logger },
});
const { port } = await app.start(0, "127.0.0.1");
const userId = `bench-${randomUUID()}`;
const token = await signHs256(secret, { sub: userId, expiresIn: "1h" });
await db.task.createMany({ data: Array.from({ length: 200 }, (_, i) => ({ userId, title: `Task ${i}` })) });

const raw = new pg.Client({ connectionString: url });
const rawListener = new pg.Client({ connectionString: url });
await raw.connect();
await rawListener.connect();

// list
const rawPool = new pg.Pool({ connectionString: url, max: 5 });
const rawServer = createServer((_req, res) => {
  rawPool
    .query("SELECT id, title, completed, created_at FROM tasks WHERE user_id = $1 ORDER BY created_at DESC, id DESC LIMIT 51", [userId])
    .then(({ rows }) => {
      res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ data: { tasks: { edges: rows.slice(0, 50).map((node) => ({ node })) } } }));
    })
    .catch(() => res.writeHead(500).end());
});
await new Promise<void>((resolve) => rawServer.listen(0, "127.0.0.1", resolve));
const rawPort = (rawServer.address() as AddressInfo).port;
const rawList = await time(ITERATIONS, async () => {
  const response = await fetch(`http://127.0.0.1:${rawPort}/`, { method: "POST", body: "{}" });
  const json = (await response.json()) as { data?: { tasks: { edges: unknown[] } } };
  if (json.data?.tasks.edges.length !== 50) throw new Error("unexpected raw list result");
});
const body = JSON.stringify({ query: "{ tasks(first: 50) { edges { node { id title completed createdAt } } } }" });
const gqlList = await time(ITERATIONS, async () => {
  const response = await fetch(`http://127.0.0.1:${port}/graphql`, {
    method: "POST",
    headers: { "content-type": "application/json", authorization: `Bearer ${token}` },
    body,
  });
  const json = (await response.json()) as { data?: { tasks: { edges: unknown[] } } };
  if (json.data?.tasks.edges.length !== 50) throw new Error("unexpected list result");
});

// push
const rawWss = new WebSocketServer({ server: rawServer });
const channel = `bench_${randomUUID().replaceAll("-", "")}`;
await rawListener.query(`LISTEN ${channel}`);
rawListener.on("notification", (message) => {
  void rawPool.query("SELECT id, title FROM tasks WHERE id = $1 AND user_id = $2", [message.payload, userId]).then(({ rows }) => {
    for (const client of rawWss.clients) client.send(JSON.stringify({ data: { taskChanged: { task: rows[0] } } }));
  });
});
const rawSocket = new WebSocket(`ws://127.0.0.1:${rawPort}/`);
await new Promise((resolve) => rawSocket.once("open", resolve));
let onRaw: (() => void) | undefined;
rawSocket.on("message", () => onRaw?.());
const rawPush = await time(Math.min(ITERATIONS, 100), async () => {
  const received = new Promise<void>((resolve) => (onRaw = resolve));
  await raw.query(
    `WITH t AS (INSERT INTO tasks (user_id, title) VALUES ($1, 'pushed') RETURNING id) SELECT pg_notify($2, (SELECT id::text FROM t))`,
    [userId, channel],
  );
  await received;
});

const ws = createClient({ url: `ws://127.0.0.1:${port}/graphql`, webSocketImpl: WebSocket, connectionParams: { authorization: `Bearer ${token}` } });
let onEvent: (() => void) | undefined;
const before = app.realtime.establishedCount;
const unsubscribe = ws.subscribe(
  { query: "subscription { taskChanged { kind taskId task { id title } } }" },
  { next: () => onEvent?.(), error: (error) => console.error(error), complete: () => {} },
);
while (app.realtime.establishedCount <= before) await new Promise((resolve) => setTimeout(resolve, 10));
const gqlPush = await time(Math.min(ITERATIONS, 100), async () => {
  const received = new Promise<void>((resolve) => (onEvent = resolve));
  await raw.query("INSERT INTO tasks (user_id, title) VALUES ($1, 'pushed')", [userId]);
  await received;
});
unsubscribe();

const rows = [
  { scenario: "list", baseline_ms: rawList, subject_ms: gqlList, ratio: gqlList / rawList, goal: GOALS.list },
  { scenario: "push", baseline_ms: rawPush, subject_ms: gqlPush, ratio: gqlPush / rawPush, goal: GOALS.push },
];
console.log(`median of ${ITERATIONS} (push: ${Math.min(ITERATIONS, 100)}) iterations, after warm-up`);
console.table(
  rows.map((row) => ({
    ...row,
    baseline_ms: row.baseline_ms.toFixed(3),
    subject_ms: row.subject_ms.toFixed(3),
    ratio: row.ratio.toFixed(2),
    met: row.ratio <= row.goal ? "yes" : "NO",
  })),
);

await ws.dispose();
rawSocket.close();
rawWss.close();
await new Promise((resolve) => rawServer.close(resolve));
await rawPool.end();
await raw.end();
await rawListener.end();
await app.stop();
await db.$disconnect();

// fan-out, with the list/push app stopped so the server process has the machine to itself
const fanoutSizes = (process.env.BENCH_FANOUT ?? "1000,5000")
  .split(",")
  .map((n) => n.trim())
  .filter((n) => n !== "" && n !== "none" && n !== "0")
  .map(Number);
const fanout: FanoutResult[] = [];
for (const sockets of fanoutSizes) {
  console.log(`fan-out: ${sockets} sockets…`);
  fanout.push(await runFanout({ url, secret, sockets, commits: Number(process.env.BENCH_FANOUT_COMMITS ?? 100) }));
}
const fanoutMet = (result: FanoutResult) =>
  result.lost === 0 && result.duplicates === 0 && result.p99Ms <= FANOUT_GOALS.p99Ms(result.sockets) && result.rssPerSocketBytes <= FANOUT_GOALS.rssPerSocketBytes;
if (fanout.length > 0) {
  console.log("fan-out: one commit at a time by raw SQL, to N/10 sockets each (goals: p99 ≤ 50 ms up to 5,000, ≤ 200 ms at 15,000; ≤ 50 KB RSS per idle socket; 0 lost)");
  console.table(
    fanout.map((result) => ({
      sockets: result.sockets,
      connect_and_subscribe_s: (result.connectMs / 1000).toFixed(2),
      rss_per_socket_kb: (result.rssPerSocketBytes / 1024).toFixed(1),
      heap_per_socket_kb: (result.heapPerSocketBytes / 1024).toFixed(1),
      p50_ms: result.p50Ms.toFixed(1),
      p99_ms: result.p99Ms.toFixed(1),
      max_ms: result.maxMs.toFixed(1),
      events: result.expected,
      lost: result.lost,
      duplicates: result.duplicates,
      p99_goal_ms: FANOUT_GOALS.p99Ms(result.sockets),
      met: fanoutMet(result) ? "yes" : "NO",
    })),
  );
}

await database.close();
process.exitCode = rows.every((row) => row.ratio <= row.goal) && fanout.every(fanoutMet) ? 0 : 1;
