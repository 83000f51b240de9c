/**
 * Recognises "the database cannot be reached right now" in any of the shapes
 * it arrives in: Prisma's own codes, the driver adapter's error kinds, the
 * SQLSTATE of a connection that the server is shutting down, or node-postgres'
 * plain errors (a pool timeout, a socket that died). Such a failure is worth
 * retrying, unlike a bug, so it gets its own code (SERVICE_UNAVAILABLE).
 */

/** P1001 can't reach, P1002 timed out, P1008 operation timed out, P1017 closed, P2024 pool timeout. */
const PRISMA_CODES = new Set(["P1001", "P1002", "P1008", "P1017", "P2024"]);

/** @prisma/driver-adapter-utils error kinds that mean "no usable connection". */
const ADAPTER_KINDS = new Set(["DatabaseNotReachable", "ConnectionClosed", "SocketTimeout", "TooManyConnections", "TlsConnectionError"]);

/** Class 08 (connection exception), 57P01–57P03 (shutdown, crash, starting up), 53300 (too many connections). */
const SQLSTATE = /^(08[0-9A-Z]{3}|57P0[1-3]|53300)$/;

const SOCKET_CODES = new Set(["ECONNREFUSED", "ECONNRESET", "ETIMEDOUT", "EPIPE", "ENOTFOUND", "EAI_AGAIN", "EHOSTUNREACH", "ENETUNREACH"]);

/** node-postgres and pg-pool report these as plain Errors, with no code. */
const MESSAGES = [
  /timeout exceeded when trying to connect/i,
  /Connection terminated/i,
  /Client has encountered a connection error/i,
  /Connection ended unexpectedly/i,
  // Prisma's P2028 when an interactive transaction got no connection within maxWait: an exhausted pool.
  // (P2028 as such also covers a transaction that ran too long, which is a bug, not an outage.)
  /Unable to start a transaction in the given time/i,
];

/** A raw query's P2010 carries the SQLSTATE only in its message ("Code: `57P01`"). */
const RAW_CODE = /Code: `([0-9A-Z]{5})`/;

export function isDatabaseUnavailable(error: unknown): boolean {
  const seen = new Set<unknown>();
  let current: unknown = error;
  while (current !== null && typeof current === "object" && !seen.has(current)) {
    seen.add(current);
    if (looksUnavailable(current as Record<string, unknown>)) return true;
    const record = current as { cause?: unknown; meta?: { driverAdapterError?: unknown } };
    current = record.meta?.driverAdapterError ?? record.cause;
  }
  return false;
}

function looksUnavailable(error: Record<string, unknown>): boolean {
  const code = typeof error.code === "string" ? error.code : undefined;
  if (code !== undefined && (PRISMA_CODES.has(code) || SQLSTATE.test(code) || SOCKET_CODES.has(code))) return true;
  if (typeof error.kind === "string" && ADAPTER_KINDS.has(error.kind)) return true;
  if (typeof error.originalCode === "string" && SQLSTATE.test(error.originalCode)) return true;
  const message = typeof error.message === "string" ? error.message : "";
  const raw = RAW_CODE.exec(message)?.[1];
  if (raw !== undefined && SQLSTATE.test(raw)) return true;
  return MESSAGES.some((pattern) => pattern.test(message));
}
