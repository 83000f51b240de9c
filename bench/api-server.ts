/**
 * The API in a process of its own, for benches and the soak that measure its
 * memory apart from their clients'. Started by bench/api-process.ts (never by
 * hand): its settings come from the environment through loadConfig, as for
 * `npm start`, with DATABASE_URL required (the parent owns the database).
 * Answers its parent over IPC: "ready" with the port, "stats" on request
 * (optionally after a full GC), "snapshot" (a heap snapshot after a full GC,
 * written where asked), and stops on "stop" the way src/main.ts does:
 * drain, then the pool.
 */
import { writeHeapSnapshot } from "node:v8";
import { buildApp } from "../src/server/app.js";
import { createVerifier } from "../src/auth/verifier.js";
import { assistantFromConfig } from "../src/boot/assistant-from-config.js";
import { loadConfig } from "../src/boot/config.js";
import { createDb } from "../src/db/client.js";
import { createLogger } from "../src/lib/logger.js";

export interface ServerStats {
  rss: number;
  heapUsed: number;
  /** Subscriptions ever established (their LISTEN and starting point in place). */
  established: number;
  /** Subscriptions open now. */
  subscribers: number;
}

export type ToServer = { type: "stats"; id: number; gc: boolean } | { type: "snapshot"; id: number; file: string } | { type: "stop" };
export type FromServer =
  | { type: "ready"; port: number; pid: number; runtime: string }
  | ({ type: "stats"; id: number } & ServerStats)
  | { type: "snapshot"; id: number; file: string };

if (!process.send) throw new Error("bench/api-server.ts is started by bench/api-process.ts");
const send = (message: FromServer) => process.send?.(message);

const config = loadConfig(process.env);
const url = config.database.url;
if (url === undefined) throw new Error("bench/api-server.ts needs DATABASE_URL");
const logger = createLogger(config.logLevel);
const db = createDb({
  url,
  driver: config.database.driver,
  poolSize: config.database.poolSize,
  connectionTimeoutMs: config.database.connectionTimeoutMs,
  statementTimeoutMs: config.database.statementTimeoutMs,
});
// The same wiring as src/main.ts, minus the embedded database and the dev token.
const app = buildApp({
  db,
  logger,
  listenUrl: config.database.directUrl ?? url,
  assistant: assistantFromConfig(config, logger),
  verifier: createVerifier(config.auth),
  http: config.http,
  shutdownGraceMs: config.shutdownGraceMs,
  realtime: { subscriptionsPerUser: config.realtime.subscriptionsPerUser },
  transport: config.realtime.transport,
  ws: config.ws,
  graphiql: false,
});
const { port } = await app.start(0, "127.0.0.1");
await new Promise<void>((resolve) => {
  const waitForListener = () => (app.transport.connected ? resolve() : setTimeout(waitForListener, 10));
  waitForListener();
});

process.on("message", (message: ToServer) => {
  if (message.type === "stats") {
    if (message.gc) (globalThis as { gc?: () => void }).gc?.();
    const memory = process.memoryUsage();
    send({
      type: "stats",
      id: message.id,
      rss: memory.rss,
      heapUsed: memory.heapUsed,
      established: app.realtime.establishedCount,
      subscribers: app.realtime.subscriberCount,
    });
  } else if (message.type === "snapshot") {
    // After a full GC, so it holds what is retained and nothing else (it stops the process while it writes).
    (globalThis as { gc?: () => void }).gc?.();
    send({ type: "snapshot", id: message.id, file: writeHeapSnapshot(message.file) });
  } else if (message.type === "stop") {
    void (async () => {
      await app.stop();
      await db.$disconnect();
      process.exit(0);
    })();
  }
});
// How it runs, so a report can say so: plain node or a loader, and whether source maps are on.
const runtime = `${process.execPath} ${[...process.execArgv, process.argv[1] ?? ""].join(" ")} (source maps ${process.sourceMapsEnabled ? "on" : "off"})`;
send({ type: "ready", port, pid: process.pid, runtime });
