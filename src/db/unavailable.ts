/**
 * Recognises "the database cannot serve this right now" in any of the shapes
 * it arrives in: Prisma's own codes, the driver adapter's error kinds, the
 * SQLSTATE of a connection that the server is shutting down, or node-postgres'
 * plain errors (a pool timeout, a socket that died). Such a failure is worth
 * retrying, unlike a bug, so it gets its own code (SERVICE_UNAVAILABLE). This
 * is the one place where database errors are classified.
 *
 * Besides an outage, two conditions of an up database are the same to a client:
 * a statement that statement_timeout cancelled (the database was too busy, or
 * a row was locked, for the time it may take), and a connection the pool could
 * not open because this process ran out of file descriptors (EMFILE, ENFILE).
 */

/** Why the database could not serve a request; the log says which. */
export type UnavailableReason = "unreachable" | "statement timeout" | "out of file descriptors";

/** P1001 can't reach, P1002 timed out, P1008 operation timed out, P1017 closed, P2024 pool timeout. */
const PRISMA_CODES = new Set(["P1001", "P1002", "P1008", "P1017", "P2024"]);

/** @prisma/driver-adapter-utils error kinds that mean "no usable connection". */
const ADAPTER_KINDS = new Set(["DatabaseNotReachable", "ConnectionClosed", "SocketTimeout", "TooManyConnections", "TlsConnectionError"]);

/** Class 08 (connection exception), 57P01–57P03 (shutdown, crash, starting up), 53300 (too many connections). */
const UNREACHABLE_SQLSTATE = /^(08[0-9A-Z]{3}|57P0[1-3]|53300)$/;

/** query_canceled: statement_timeout (or a cancel request) stopped the statement. */
const CANCELLED_SQLSTATE = "57014";

const SOCKET_CODES = new Set(["ECONNREFUSED", "ECONNRESET", "ETIMEDOUT", "EPIPE", "ENOTFOUND", "EAI_AGAIN", "EHOSTUNREACH", "ENETUNREACH"]);

/** The process (EMFILE) or the system (ENFILE) has no file descriptor left for a new connection. */
const DESCRIPTOR_CODES = new Set(["EMFILE", "ENFILE"]);

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
  return unavailableReason(error) !== undefined;
}

/** Why `error` (or anything in its cause chain) means the database cannot serve right now; undefined when it does not. */
export function unavailableReason(error: unknown): UnavailableReason | undefined {
  const seen = new Set<unknown>();
  let current: unknown = error;
  while (current !== null && typeof current === "object" && !seen.has(current)) {
    seen.add(current);
    const reason = reasonOf(current as Record<string, unknown>);
    if (reason !== undefined) return reason;
    const record = current as { cause?: unknown; meta?: { driverAdapterError?: unknown } };
    current = record.meta?.driverAdapterError ?? record.cause;
  }
  return undefined;
}

function reasonOf(error: Record<string, unknown>): UnavailableReason | undefined {
  const message = typeof error.message === "string" ? error.message : "";
  const codes = [error.code, error.originalCode, RAW_CODE.exec(message)?.[1]].filter((code): code is string => typeof code === "string");
  for (const code of codes) {
    const reason = reasonOfCode(code);
    if (reason !== undefined) return reason;
  }
  if (typeof error.kind === "string" && ADAPTER_KINDS.has(error.kind)) return "unreachable";
  return MESSAGES.some((pattern) => pattern.test(message)) ? "unreachable" : undefined;
}

function reasonOfCode(code: string): UnavailableReason | undefined {
  if (code === CANCELLED_SQLSTATE) return "statement timeout";
  if (DESCRIPTOR_CODES.has(code)) return "out of file descriptors";
  if (PRISMA_CODES.has(code) || UNREACHABLE_SQLSTATE.test(code) || SOCKET_CODES.has(code)) return "unreachable";
  return undefined;
}
