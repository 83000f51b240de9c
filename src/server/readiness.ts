import { GraphQLError } from "graphql";
import type { Db } from "../db/client.js";
import type { Logger } from "../lib/logger.js";
import type { RealtimeTransport } from "../realtime/transport.js";
import type { Route } from "./routes.js";

/**
 * /ready's check: the database answers and the realtime transport is connected
 * (LISTEN, or NATS), each within the timeout: an instance whose subscribers
 * would hear nothing new is taken out of rotation like one without a database.
 */
export async function ready(db: Db, transport: RealtimeTransport, logger: Logger, timeoutMs: number): Promise<boolean> {
  const [database, connected] = await Promise.all([databaseReady(db, logger, timeoutMs), transportConnected(transport, timeoutMs)]);
  if (!connected) logger.warn({ transport: transport.kind }, "readiness check failed: the realtime transport is not connected");
  return database && connected;
}

/** Whether the transport is connected, or connects within `timeoutMs` (it may be starting, or reconnecting now). */
async function transportConnected(transport: RealtimeTransport, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (!transport.connected) {
    if (Date.now() >= deadline) return false;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  return true;
}

/** /ready's check: the database answers within `timeoutMs`. */
export async function databaseReady(db: Db, logger: Logger, timeoutMs: number): Promise<boolean> {
  try {
    await withTimeout(db.$queryRaw`SELECT 1`, timeoutMs);
    return true;
  } catch (error) {
    // Yoga would answer with the error's message, which names the database host,
    // port and Prisma internals: a bare 503 for the client, the reason for the log.
    logger.warn({ err: error }, "readiness check failed");
    return false;
  }
}

function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new GraphQLError(`timed out after ${ms} ms`)), ms);
    promise.then(
      (value) => {
        clearTimeout(timer);
        resolve(value);
      },
      (error: unknown) => {
        clearTimeout(timer);
        reject(error instanceof Error ? error : new Error(String(error)));
      },
    );
  });
}

/**
 * GET /ready as one of the routes: 200 when `check` passes, else a bare 503
 * (the reason is logged, never sent). A route matches its exact path, where
 * Yoga's readiness plugin ran a URLPattern over every other request's URL
 * (1 % of a task list's CPU in B1's profile).
 */
export function readinessRoute(check: () => Promise<boolean>): Route {
  return { path: "/ready", handle: async () => new Response(null, { status: (await check()) ? 200 : 503 }) };
}
