import { fileURLToPath } from "node:url";
import type { Config } from "../config.js";
import type { Logger } from "../logger.js";
import { startEmbeddedPostgres } from "./embedded.js";
import { applyMigrations } from "./migrate.js";

export const MIGRATIONS_DIR = fileURLToPath(new URL("../../prisma/migrations", import.meta.url));
export const EMBEDDED_DATA_DIR = ".data/postgres";

export interface OpenDatabase {
  /** Pooled URL for queries. */
  url: string;
  /** Unpooled URL for migrations and LISTEN. */
  directUrl: string;
  close(): Promise<void>;
}

/** The configured database, or the embedded one when DATABASE_URL is unset; migrated either way. */
export async function openDatabase(database: Config["database"], logger: Logger): Promise<OpenDatabase> {
  let opened: OpenDatabase;
  if (database.url === undefined) {
    const embedded = await startEmbeddedPostgres({
      dataDir: EMBEDDED_DATA_DIR,
      onLog: (line) => logger.debug({ postgres: line.trim() }, "embedded postgres"),
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
    });
    logger.info({ applied: result.applied.length, upToDate: result.alreadyApplied.length }, "migrations checked");
  } catch (error) {
    await opened.close();
    throw error;
  }
  return opened;
}
