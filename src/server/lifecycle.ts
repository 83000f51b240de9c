import type { Server } from "node:http";
import type { AddressInfo } from "node:net";
import type { Assistant } from "../chat/assistant.js";
import type { Db } from "../db/client.js";
import { sweepInterruptedTurns } from "../domain/conversation-log.js";
import type { Logger } from "../lib/logger.js";
import type { RealtimeTransport } from "../realtime/transport.js";
import type { Drain } from "./drain.js";
import type { MetricsListener } from "./metrics-listener.js";
import type { GraphQLWs } from "./ws/attach.js";

/** What an app instance opens at start and closes at stop, in that order. */
export interface LifecycleParts {
  db: Db;
  logger: Logger;
  server: Server;
  transport: RealtimeTransport;
  drain: Drain;
  ws: Pick<GraphQLWs, "close">;
  assistant: Assistant;
  /** How long stop() lets accepted requests and running turns finish. */
  graceMs: number;
  /** /metrics on a listener of its own (METRICS_PORT), when set. */
  metrics?: MetricsListener | undefined;
}

/** After the grace period, how long the answers of requests whose turns were just interrupted may take to go out. */
const ANSWERS_AFTER_STOP_MS = 2000;

/** Where a started app listens, and when its start-up sweep has ended. */
export interface StartedApp {
  port: number;
  url: string;
  /** Undefined without METRICS_PORT, or when its listener could not bind (logged). */
  metricsPort?: number | undefined;
  /** Settles (never rejects) once the sweep of dead instances' turns has run or failed: the one statement a start issues on its own. */
  startupSwept: Promise<void>;
}

/** Starts the background work (the realtime transport, the sweep of dead instances' turns), then listens on the port (0 picks a free one). */
export async function startApp(parts: LifecycleParts, port: number, host = "127.0.0.1"): Promise<StartedApp> {
  const { transport, logger, db } = parts;
  // Subscriptions open even while the transport is still (re)connecting: they stay open and catch up.
  transport
    .start()
    .catch((error: unknown) => logger.warn({ err: error, transport: transport.kind }, "realtime transport not connected yet; retrying"));
  // Turns that dead instances left RUNNING (their leases expired) are marked interrupted; requests find any it misses.
  // Not awaited before listening: a database that is down at start must not keep /health and /ready from answering.
  const startupSwept = sweepInterruptedTurns(db).then(
    (count) => void (count > 0 && logger.info({ count }, "marked turns of stopped instances interrupted")),
    (error: unknown) => logger.warn({ err: error }, "could not sweep interrupted turns; requests still find them"),
  );
  // Turns whose approval expired while no instance was up end now, and each later one when it falls due.
  parts.assistant.startSweeps();
  const listening = await listen(parts.server, port, host, logger);
  // After the API's own port: a metrics port that cannot be bound is a warning, never a failed start.
  const metricsPort = await parts.metrics?.start();
  return { ...listening, metricsPort, startupSwept };
}

function listen(server: Server, port: number, host: string, logger: Logger): Promise<{ port: number; url: string }> {
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => {
      server.off("error", reject);
      // Later errors (a socket that misbehaves) are logged, never an unhandled 'error' event.
      server.on("error", (error) => logger.error({ err: error }, "HTTP server error"));
      const address = server.address() as AddressInfo;
      const shownHost = host === "0.0.0.0" || host === "::" ? "localhost" : host;
      resolve({ port: address.port, url: `http://${shownHost}:${address.port}/graphql` });
    });
  });
}

/**
 * Drains, then closes: new work is refused, WebSockets close, accepted requests and then the
 * running turns get the grace period, the server closes, the realtime transport last.
 * Resolves with whether everything finished within the grace period.
 */
export async function stopApp(parts: LifecycleParts): Promise<boolean> {
  const { drain, assistant } = parts;
  const graceEnds = Date.now() + parts.graceMs;
  drain.begin();
  await parts.ws.close();
  const finished = await settleWithin(parts, graceEnds);
  // Turns still running are ended as interrupted and their leases handed back, so a retry resumes them at once.
  await assistant.stop();
  // The requests that waited for those turns now have their answer ("interrupted, retry"): let it
  // reach their clients before the connections close, or they would see a reset instead.
  if (!finished) await drain.settled(ANSWERS_AFTER_STOP_MS);
  await closeServer(parts.server);
  await parts.transport.close();
  // Last: the drain can be watched to its end.
  await parts.metrics?.close();
  return finished;
}

/** Accepted requests, then the turns running in the background, get the rest of the grace period. */
async function settleWithin(parts: LifecycleParts, graceEnds: number): Promise<boolean> {
  const { drain, assistant } = parts;
  const requestsDone = await drain.settled(graceEnds - Date.now());
  const turnsDone = await assistant.finished(Math.max(0, graceEnds - Date.now()));
  const finished = requestsDone && turnsDone;
  if (!finished) {
    parts.logger.warn({ inFlight: drain.inFlight, turns: assistant.runningCount }, "shutdown grace period over; interrupting what is left");
  }
  return finished;
}

function closeServer(server: Server): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    if (!server.listening) return resolve();
    server.close((error) => (error ? reject(error) : resolve()));
    server.closeAllConnections();
  });
}
