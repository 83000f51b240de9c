import path from "node:path";
import type { DatabaseSettings } from "./settings.js";
import type { Logger } from "../lib/logger.js";
import { PROJECT_ROOT } from "../lib/project-root.js";
import { startEmbeddedPostgres } from "./embedded.js";
import { applyMigrations, MigrationError } from "./migrate.js";

export const MIGRATIONS_DIR = path.join(PROJECT_ROOT, "prisma", "migrations");

/**
 * A configured database could not be reached or used at start. It names the
 * setting and the host and port, never the URL, which may hold a password.
 */
export class DatabaseOpenError extends Error {
  override name = "DatabaseOpenError";

  constructor(
    readonly setting: "DATABASE_URL" | "DIRECT_URL",
    /** host:port */
    readonly address: string,
    options: { cause: unknown },
  ) {
    super(`The database at ${address} (${setting}) failed: ${messageOf(options.cause)}`, options);
  }
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** host:port of a Postgres URL, as node-postgres resolves them (a `host` parameter wins, 5432 by default). */
export function databaseAddress(url: string): string {
  const parsed = new URL(url);
  const host = parsed.searchParams.get("host") ?? (parsed.hostname || "localhost");
  return `${host}:${parsed.port || "5432"}`;
}

export interface OpenDatabase {
  /** Pooled URL for queries. */
  url: string;
  /** Unpooled URL for migrations and LISTEN. */
  directUrl: string;
  close(): Promise<void>;
}

/**
 * The configured database, or the embedded one when DATABASE_URL is unset; migrated either way.
 * `whileBooting` is called once the embedded Postgres is spawned and booting (never for another).
 */
export async function openDatabase(database: DatabaseSettings, logger: Logger, whileBooting?: () => void): Promise<OpenDatabase> {
  let opened: OpenDatabase;
  if (database.url === undefined) {
    const embedded = await startEmbeddedPostgres({
      dataDir: database.embeddedDataDir,
      onLog: (line) => logger.debug({ postgres: line.trim() }, "embedded postgres"),
      onNotice: (message) => logger.warn(message),
      onBooting: whileBooting,
    });
    logger.info({ dataDir: embedded.dataDir }, `Using the embedded Postgres (DATABASE_URL is unset); data in ${embedded.dataDir}`);
    opened = { url: embedded.url, directUrl: embedded.url, close: embedded.stop };
  } else {
    opened = { url: database.url, directUrl: database.directUrl ?? database.url, close: async () => {} };
  }
  try {
    const result = await applyMigrations({
      url: opened.directUrl,
      migrationsDir: MIGRATIONS_DIR,
      log: (message) => logger.info(message),
      connectionTimeoutMs: database.connectionTimeoutMs,
    });
    logger.info({ applied: result.applied.length, upToDate: result.alreadyApplied.length }, "migrations checked");
  } catch (error) {
    await opened.close();
    if (database.url === undefined || error instanceof MigrationError) throw error;
    const setting = database.directUrl !== undefined && database.directUrl !== database.url ? "DIRECT_URL" : "DATABASE_URL";
    throw new DatabaseOpenError(setting, databaseAddress(opened.directUrl), { cause: error });
  }
  return opened;
}
