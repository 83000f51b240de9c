/**
 * The API under the fan-out benchmark, in a process of its own so its memory
 * can be measured apart from the clients'. Started by bench/fanout.ts with
 * BENCH_FANOUT_URL and BENCH_FANOUT_SECRET; answers its parent over IPC:
 * "ready" with the port, "stats" (after a full GC) on request, and stops on "stop".
 */
import { buildApp } from "../src/app.js";
import { createVerifier } from "../src/auth.js";
import { loadConfig } from "../src/config.js";
import { createDb } from "../src/db/client.js";
import { createLogger } from "../src/logger.js";

export interface ServerStats {
  rss: number;
  heapUsed: number;
  established: number;
  subscribers: number;
}

export type ToServer = { type: "stats"; gc: boolean } | { type: "stop" };
export type FromServer = { type: "ready"; port: number } | ({ type: "stats" } & ServerStats);

const url = process.env.BENCH_FANOUT_URL;
const secret = process.env.BENCH_FANOUT_SECRET;
if (!url || !secret || !process.send) throw new Error("bench/fanout-server.ts is started by bench/fanout.ts");
const send = (message: FromServer) => process.send?.(message);

const logger = createLogger(process.env.BENCH_LOG_LEVEL ?? "silent");
const db = createDb({ url, driver: "pg", poolSize: 10, connectionTimeoutMs: 5000 });
const app = buildApp({
  db,
  logger,
  verifier: createVerifier({ jwtSecret: secret, jwksUrl: undefined, issuer: undefined, audience: undefined, maxTokenAgeSeconds: undefined }),
  graphiql: false,
  http: loadConfig({ NODE_ENV: "production", AUTH_JWT_SECRET: secret }).http,
  listenUrl: url,
  // Every socket of a user subscribes; the default of 50 per user would refuse most of them.
  realtime: { subscriptionsPerUser: 1_000_000 },
  assistant: { model: undefined, modelName: "none", maxSteps: 1, callTimeoutMs: 1, turnTimeoutMs: 1, clock: () => new Date(), logger },
});
const { port } = await app.start(0, "127.0.0.1");
await new Promise<void>((resolve) => {
  const waitForListener = () => (app.listener.connected ? resolve() : setTimeout(waitForListener, 10));
  waitForListener();
});

process.on("message", (message: ToServer) => {
  if (message.type === "stats") {
    if (message.gc) (globalThis as { gc?: () => void }).gc?.();
    const memory = process.memoryUsage();
    send({
      type: "stats",
      rss: memory.rss,
      heapUsed: memory.heapUsed,
      established: app.realtime.establishedCount,
      subscribers: app.realtime.subscriberCount,
    });
  } else if (message.type === "stop") {
    void (async () => {
      await app.stop();
      await db.$disconnect();
      process.exit(0);
    })();
  }
});
send({ type: "ready", port });
