/**
 * The one-at-a-time medians (`list`, `push`): each request alone, as a median
 * of many, against a raw baseline in the same process on the same database.
 * No GraphQL, no ORM, no auth in the baselines.
 *   list:  GraphQL `tasks(first: 50)` over HTTP    vs  a bare node:http handler running the SELECT with pg
 *   push:  INSERT → taskChanged over graphql-ws   vs  INSERT → LISTEN → SELECT the row → a bare ws message
 */
import { randomUUID } from "node:crypto";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { createClient } from "graphql-ws";
import pg from "pg";
import { WebSocket, WebSocketServer } from "ws";
import { buildApp } from "../../src/server/app.js";
import { createVerifier, signHs256 } from "../../src/auth/verifier.js";
import { createDb } from "../../src/db/client.js";
import { loadConfig } from "../../src/boot/config.js";
import { createLogger } from "../../src/lib/logger.js";
import { figure, median, type Figure } from "../lib/figure.js";
import type { BenchContext } from "../lib/scenario.js";

const GOALS = { list: 3, push: 3 };
const ITERATIONS = Number(process.env.BENCH_ITERATIONS ?? 200);

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

export async function runListPush(ctx: BenchContext): Promise<Figure[]> {
  const url = ctx.url;
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
        res
          .writeHead(200, { "content-type": "application/json" })
          .end(JSON.stringify({ data: { tasks: { edges: rows.slice(0, 50).map((node) => ({ node })) } } }));
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

  const ws = createClient({
    url: `ws://127.0.0.1:${port}/graphql`,
    webSocketImpl: WebSocket,
    connectionParams: { authorization: `Bearer ${token}` },
  });
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

  await ws.dispose();
  rawSocket.close();
  rawWss.close();
  await new Promise((resolve) => rawServer.close(resolve));
  await rawPool.end();
  await raw.end();
  await rawListener.end();
  await app.stop();
  await db.$disconnect();

  const note = `median of ${ITERATIONS} one-at-a-time requests (push: ${Math.min(ITERATIONS, 100)}), after warm-up`;
  return [
    figure({
      id: "list",
      figure: "tasks(first: 50), one at a time: median",
      ours: gqlList,
      baseline: rawList,
      unit: "ms",
      goal: `ratio ≤ ${GOALS.list}`,
      met: gqlList / rawList <= GOALS.list,
      note,
    }),
    figure({
      id: "push",
      figure: "INSERT → taskChanged, one at a time: median",
      ours: gqlPush,
      baseline: rawPush,
      unit: "ms",
      goal: `ratio ≤ ${GOALS.push}`,
      met: gqlPush / rawPush <= GOALS.push,
      note,
    }),
  ];
}
