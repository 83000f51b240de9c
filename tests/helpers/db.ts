import { randomBytes, randomUUID } from "node:crypto";
import pg from "pg";
import { inject } from "vitest";
import { createDb, type Db, type DbOptions } from "../../src/db/client.js";
import { applyMigrations } from "../../src/db/migrate.js";
import { MIGRATIONS_DIR } from "../../src/db/open.js";

export function databaseUrl(): string {
  return inject("databaseUrl");
}

export function testDb(options: Partial<DbOptions> = {}): Db {
  return createDb({ url: databaseUrl(), driver: "pg", poolSize: 5, connectionTimeoutMs: 5000, ...options });
}

/** A user id no other test uses: fixtures never need to truncate. */
export function newUserId(label = "user"): string {
  return `${label}-${randomUUID()}`;
}

/** A fresh, empty database on the test server; dropped by the returned function. */
export async function freshDatabase(): Promise<{ url: string; drop: () => Promise<void> }> {
  const adminUrl = inject("adminUrl");
  const name = `todo_fresh_${randomBytes(6).toString("hex")}`;
  const admin = new pg.Client({ connectionString: adminUrl });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${name}`);
  await admin.end();
  const url = new URL(adminUrl);
  url.pathname = `/${name}`;
  return {
    url: url.toString(),
    drop: async () => {
      const client = new pg.Client({ connectionString: adminUrl });
      await client.connect();
      await client.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      await client.end();
    },
  };
}

/**
 * A fresh database with the project's migrations applied, for a test that
 * must not see other files' servers (they share the test database, and their
 * background sweeps act on every user's rows).
 */
export async function migratedDatabase(): Promise<{ url: string; drop: () => Promise<void> }> {
  const fresh = await freshDatabase();
  try {
    await applyMigrations({ url: fresh.url, migrationsDir: MIGRATIONS_DIR });
    return fresh;
  } catch (error) {
    await fresh.drop();
    throw error;
  }
}
