import { createHash, randomUUID } from "node:crypto";
import { readdir, readFile } from "node:fs/promises";
import path from "node:path";
import pg from "pg";

/** Prisma Migrate's own advisory lock key, so this applier and `prisma migrate deploy` exclude each other. */
export const PRISMA_ADVISORY_LOCK_KEY = 72707369;

/** The table exactly as Prisma's schema engine creates it. */
const CREATE_MIGRATIONS_TABLE = `
CREATE TABLE IF NOT EXISTS "_prisma_migrations" (
    "id"                    VARCHAR(36) PRIMARY KEY NOT NULL,
    "checksum"              VARCHAR(64) NOT NULL,
    "finished_at"           TIMESTAMPTZ,
    "migration_name"        VARCHAR(255) NOT NULL,
    "logs"                  TEXT,
    "rolled_back_at"        TIMESTAMPTZ,
    "started_at"            TIMESTAMPTZ NOT NULL DEFAULT now(),
    "applied_steps_count"   INTEGER NOT NULL DEFAULT 0
)`;

export class MigrationError extends Error {
  override name = "MigrationError";
}

export interface MigrationFile {
  name: string;
  sql: string;
  checksum: string;
}

export interface MigrateResult {
  applied: string[];
  alreadyApplied: string[];
}

export interface MigrateOptions {
  url: string;
  migrationsDir: string;
  log?: (message: string) => void;
  /** How long connecting may take before it fails (default: the OS's TCP timeout). */
  connectionTimeoutMs?: number;
}

interface AppliedRow {
  migration_name: string;
  checksum: string;
  finished_at: Date | null;
}

export function checksumOf(sql: string): string {
  return createHash("sha256").update(sql, "utf8").digest("hex");
}

/**
 * Prisma accepts a checksum of the script as written, with CRLF folded to LF, or
 * with LF expanded to CRLF (schema-engine's script_matches_checksum), so a
 * migration applied from a Windows checkout still matches its LF file.
 */
function matchesChecksum(file: MigrationFile, recorded: string): boolean {
  return (
    file.checksum === recorded ||
    checksumOf(file.sql.replaceAll("\r\n", "\n")) === recorded ||
    checksumOf(file.sql.replaceAll("\n", "\r\n")) === recorded
  );
}

export async function readMigrations(migrationsDir: string): Promise<MigrationFile[]> {
  const entries = await readdir(migrationsDir, { withFileTypes: true });
  const names = entries
    .filter((entry) => entry.isDirectory())
    .map((entry) => entry.name)
    .sort();
  return Promise.all(
    names.map(async (name) => {
      const sql = await readFile(path.join(migrationsDir, name, "migration.sql"), "utf8");
      return { name, sql, checksum: checksumOf(sql) };
    }),
  );
}

/**
 * Applies prisma/migrations the way `prisma migrate deploy` does, without
 * Prisma's schema engine: in order, each in its own transaction, under
 * Prisma's advisory lock, recorded in `_prisma_migrations` as Prisma records them.
 */
export async function applyMigrations(options: MigrateOptions): Promise<MigrateResult> {
  const log = options.log ?? (() => {});
  const files = await readMigrations(options.migrationsDir);
  const client = new pg.Client({ connectionString: options.url, connectionTimeoutMillis: options.connectionTimeoutMs });
  // Failures arrive through the awaited calls; without a listener a connection
  // dropped between two of them would crash the process.
  client.on("error", () => {});
  await client.connect();
  try {
    // Session-level, so it spans the per-migration transactions below.
    await client.query("SELECT pg_advisory_lock($1)", [PRISMA_ADVISORY_LOCK_KEY]);
    try {
      return await applyLocked(client, files, log);
    } finally {
      await client.query("SELECT pg_advisory_unlock($1)", [PRISMA_ADVISORY_LOCK_KEY]);
    }
  } finally {
    await client.end();
  }
}

async function applyLocked(client: pg.Client, files: MigrationFile[], log: (message: string) => void): Promise<MigrateResult> {
  await client.query(CREATE_MIGRATIONS_TABLE);
  const { rows } = await client.query<AppliedRow>(
    `SELECT migration_name, checksum, finished_at FROM "_prisma_migrations"
     WHERE rolled_back_at IS NULL ORDER BY started_at`,
  );
  const byName = new Map(rows.map((row) => [row.migration_name, row]));

  const failed = rows.find((row) => row.finished_at === null);
  if (failed) {
    throw new MigrationError(
      `Migration ${failed.migration_name} failed earlier and was not rolled back. ` +
        `Fix the database, then mark it with \`prisma migrate resolve --rolled-back ${failed.migration_name}\`.`,
    );
  }
  const known = new Set(files.map((file) => file.name));
  for (const row of rows) {
    if (!known.has(row.migration_name)) {
      log(`Migration ${row.migration_name} is applied in the database but missing from prisma/migrations`);
    }
  }

  const result: MigrateResult = { applied: [], alreadyApplied: [] };
  for (const file of files) {
    const row = byName.get(file.name);
    if (row) {
      if (!matchesChecksum(file, row.checksum)) {
        throw new MigrationError(
          `Migration ${file.name} was modified after it was applied (checksum ${row.checksum} in the database, ` +
            `${file.checksum} on disk). Add a new migration instead of editing an applied one.`,
        );
      }
      result.alreadyApplied.push(file.name);
      continue;
    }
    await applyOne(client, file);
    log(`Applied migration ${file.name}`);
    result.applied.push(file.name);
  }
  return result;
}

async function applyOne(client: pg.Client, file: MigrationFile): Promise<void> {
  const id = randomUUID();
  // Recorded before the script runs, as Prisma does, so a failure leaves a trace.
  await client.query(
    `INSERT INTO "_prisma_migrations" (id, checksum, migration_name, started_at, applied_steps_count)
     VALUES ($1, $2, $3, now(), 0)`,
    [id, file.checksum, file.name],
  );
  try {
    await client.query("BEGIN");
    await client.query(file.sql);
    await client.query(`UPDATE "_prisma_migrations" SET finished_at = now(), applied_steps_count = 1 WHERE id = $1`, [id]);
    await client.query("COMMIT");
  } catch (error) {
    await client.query("ROLLBACK");
    const message = error instanceof Error ? error.message : String(error);
    await client.query(`UPDATE "_prisma_migrations" SET logs = $2 WHERE id = $1`, [id, message]);
    throw new MigrationError(`Migration ${file.name} failed: ${message}`, { cause: error });
  }
}
