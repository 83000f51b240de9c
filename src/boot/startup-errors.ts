import { ConfigError, loadConfig, type Config } from "./config.js";
import { EmbeddedPostgresError } from "../db/embedded.js";
import { MigrationError } from "../db/migrate.js";
import { DatabaseOpenError } from "../db/open.js";
import type { Logger } from "../lib/logger.js";

// Every entry point (server, stdio MCP, scripts) ends a failed start the same
// way: one line on stderr that says what to change, exit code 1. Never a stack
// (it goes to the debug log) and never a database URL, which may hold a password.

/** The HTTP server could not listen; main.ts wraps app.start()'s rejection in it. */
export class ListenError extends Error {
  override name = "ListenError";

  constructor(
    readonly port: number,
    readonly host: string,
    options: { cause: unknown },
  ) {
    super(`Cannot listen on ${host}:${port}: ${messageOf(options.cause)}`, options);
  }
}

/** Connection-level failures of Node's sockets and DNS. */
const NETWORK_CODES = new Set(["ECONNREFUSED", "ECONNRESET", "ENOTFOUND", "EAI_AGAIN", "ETIMEDOUT", "EHOSTUNREACH", "ENETUNREACH", "EPIPE"]);

/** SQLSTATE classes a server answers a connection attempt with: connection exception, bad login, unknown database, overload. */
const REFUSAL_STATES = /^(08|28|3D000|53300|57P03)/;

export function startupErrorLine(error: unknown): string {
  if (error instanceof ConfigError) return `Invalid configuration:\n${error.message}`;
  if (error instanceof ListenError) return listenLine(error);
  if (error instanceof DatabaseOpenError) return databaseLine(error);
  if (error instanceof EmbeddedPostgresError || error instanceof MigrationError) return oneLine(error.message);
  return oneLine(`Failed to start: ${messageOf(error)}`);
}

/** Writes the line to stderr and exits with code 1; the stack is logged at debug level only. */
/** The configuration of an entry point (start, db:migrate, token), or one line on stderr and exit 1. */
export function loadConfigOrExit(): Config {
  try {
    return loadConfig();
  } catch (error) {
    return exitOnStartupError(error);
  }
}

export function exitOnStartupError(error: unknown, logger?: Logger): never {
  logger?.debug({ err: error }, "start-up failed");
  process.stderr.write(`${startupErrorLine(error)}\n`);
  process.exit(1);
}

function listenLine({ port, host, cause }: ListenError): string {
  const code = codeOf(cause);
  if (code === "EADDRINUSE") return `PORT ${port} is in use on ${host}; set PORT to a free port`;
  if (code === "EACCES" && port < 1024) return `PORT ${port} is privileged and this process may not listen on it; set PORT to 1024 or above`;
  if (code === "EACCES") return `Not allowed to listen on ${host}:${port} (EACCES); set PORT or HOST`;
  if (code === "EADDRNOTAVAIL") return `HOST ${host} is not an address of this machine; set HOST`;
  if (code === "ENOTFOUND" || code === "EAI_AGAIN") return `HOST ${host} cannot be resolved (${code}); set HOST`;
  return oneLine(`Cannot listen on ${host}:${port}: ${messageOf(cause)}; check PORT and HOST`);
}

function databaseLine({ setting, address, cause }: DatabaseOpenError): string {
  const code = codeOf(cause);
  if (code !== undefined && NETWORK_CODES.has(code)) return `Cannot reach the database at ${address} (${code}); check ${setting}`;
  const message = messageOf(cause);
  // node-postgres' own words for a connect timeout and for a peer that hung up.
  if (message === "timeout expired" || /connection timeout/i.test(message)) {
    return `Cannot reach the database at ${address} (no answer in time); check ${setting}`;
  }
  if (message.startsWith("Connection terminated")) {
    return `Cannot reach the database at ${address} (the connection was closed; is it a Postgres server?); check ${setting}`;
  }
  if ((code !== undefined && REFUSAL_STATES.test(code)) || /\bSSL\b/.test(message)) {
    return oneLine(`The database at ${address} refused the connection: ${message}; check ${setting}`);
  }
  return oneLine(`Failed to start: the database at ${address} (${setting}) answered: ${message}`);
}

function codeOf(error: unknown): string | undefined {
  const code = (error as { code?: unknown } | undefined)?.code;
  return typeof code === "string" ? code : undefined;
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** Folds a message onto one line and masks any credentials in a URL it quotes. */
function oneLine(message: string): string {
  return message
    .replace(/\b([a-z][a-z0-9+.-]*:\/\/[^\s:@/]*):[^\s@/]*@/gi, "$1:***@")
    .replace(/\s*\n\s*/g, " ")
    .trim();
}
