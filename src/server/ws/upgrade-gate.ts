import type { IncomingMessage } from "node:http";
import type { Socket } from "node:net";
import type { Duplex } from "node:stream";
import type { Logger } from "../../lib/logger.js";
import type { ConnectionLedger, Seat } from "./connection-ledger.js";

/** A refused upgrade's socket is cut this long after its answer, if the client has not closed it by then. */
const REFUSED_LINGER_MS = 1000;
/** At most one log line this often about refusals at a cap, however many there are. */
const REFUSAL_LOG_INTERVAL_MS = 10_000;

export interface GateOptions {
  endpoint: string;
  /** False while the server drains: new sockets are refused. */
  accepting: () => boolean;
  /** Browser origins besides the API's own (CORS_ORIGINS). */
  allowedOrigins: readonly string[];
  ledger: ConnectionLedger;
  logger: Logger;
}

type Refusal = { status: number; reason: string; retryAfter?: boolean };

const REFUSALS = {
  notFound: { status: 404, reason: "Not Found" },
  draining: { status: 503, reason: "Service Unavailable", retryAfter: true },
  origin: { status: 403, reason: "Forbidden" },
  process: { status: 503, reason: "Service Unavailable", retryAfter: true },
  address: { status: 429, reason: "Too Many Requests", retryAfter: true },
} satisfies Record<string, Refusal>;

/**
 * The HTTP server's "upgrade" handler: checks an upgrade before anything is
 * allocated for it, and counts an accepted one in the ledger from here until
 * its TCP socket closes. Refusals are plain HTTP answers: 404 off the
 * endpoint, 503 while draining or at WS_MAX_CONNECTIONS, 403 for a foreign
 * browser origin, 429 past WS_UNAUTHENTICATED_PER_ADDRESS.
 */
export function upgradeGate(options: GateOptions, accept: (req: IncomingMessage, socket: Duplex, head: Buffer, seat: Seat) => void) {
  const logRefusal = throttledLog(options.logger);
  return (req: IncomingMessage, socket: Duplex, head: Buffer): void => {
    socket.on("error", () => socket.destroy());
    const refusal = checkRequest(req, options);
    if (refusal) return refuse(socket, refusal);
    const address = (socket as Socket).remoteAddress;
    if (address === undefined || socket.destroyed) return void socket.destroy(); // Already gone: its "close" may have fired.
    const admission = options.ledger.admit(address);
    if ("refused" in admission) {
      logRefusal(admission.refused, options.ledger);
      return refuse(socket, REFUSALS[admission.refused]);
    }
    socket.once("close", () => options.ledger.release(admission.seat));
    accept(req, socket, head, admission.seat);
  };
}

function checkRequest(req: IncomingMessage, options: GateOptions): Refusal | undefined {
  if (pathOf(req.url) !== options.endpoint) return REFUSALS.notFound;
  if (!options.accepting()) return REFUSALS.draining;
  // Browsers let any page open a WebSocket anywhere; only the API's own pages and listed origins may.
  if (!originAllowed(req, options.allowedOrigins)) return REFUSALS.origin;
  return undefined;
}

function pathOf(url: string | undefined): string | undefined {
  const path = url?.split("?", 1)[0];
  return path === "" ? undefined : path;
}

function originAllowed(req: IncomingMessage, allowed: readonly string[]): boolean {
  const origin = req.headers.origin;
  // Non-browser clients send no Origin; they carry a token like any other client.
  if (origin === undefined) return true;
  if (allowed.includes(origin)) return true;
  const host = req.headers.host;
  return host !== undefined && (origin === `http://${host}` || origin === `https://${host}`);
}

function refuse(socket: Duplex, refusal: Refusal): void {
  const retryAfter = refusal.retryAfter ? "Retry-After: 1\r\n" : "";
  socket.end(`HTTP/1.1 ${refusal.status} ${refusal.reason}\r\n${retryAfter}Connection: close\r\nContent-Length: 0\r\n\r\n`);
  // The HTTP server keeps half-open sockets; a refused one must not hold its file descriptor for long.
  setTimeout(() => socket.destroy(), REFUSED_LINGER_MS).unref();
}

function throttledLog(logger: Logger): (cap: "process" | "address", ledger: ConnectionLedger) => void {
  let last = Number.NEGATIVE_INFINITY;
  return (cap, ledger) => {
    if (Date.now() - last < REFUSAL_LOG_INTERVAL_MS) return;
    last = Date.now();
    const what = cap === "process" ? "WS_MAX_CONNECTIONS reached" : "WS_UNAUTHENTICATED_PER_ADDRESS reached for an address";
    logger.warn({ connections: ledger.connections, unauthenticated: ledger.unauthenticated }, `WebSocket upgrades refused: ${what}`);
  };
}
