import { randomUUID } from "node:crypto";
import { chmod, mkdtemp, readFile, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startEmbeddedPostgres, type EmbeddedDatabase } from "../../src/db/embedded.js";
import { applyMigrations, readMigrations } from "../../src/db/migrate.js";
import { MIGRATIONS_DIR } from "../../src/db/open.js";

async function query<T extends pg.QueryResultRow>(url: string, sql: string, params: unknown[] = []): Promise<T[]> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return (await client.query<T>(sql, params)).rows;
  } finally {
    await client.end();
  }
}

describe("startEmbeddedPostgres", () => {
  let tempDir: string;
  let dataDir: string;
  let urlPassword: string | undefined;
  const running: EmbeddedDatabase[] = [];

  beforeAll(async () => {
    tempDir = await mkdtemp(path.join(tmpdir(), "todo-embedded-test-"));
    // As root, Postgres runs as the `postgres` user, which must be able to enter the directory.
    await chmod(tempDir, 0o755);
    dataDir = path.join(tempDir, "cluster");
  });

  afterAll(async () => {
    for (const database of running) await database.stop();
    if (tempDir) await rm(tempDir, { recursive: true, force: true });
  });

  it("should start on a free port, migrate, and keep its data across a stop and start", async () => {
    const first = await startEmbeddedPostgres({ dataDir, database: "embedded_test" });
    running.push(first);
    const firstUrl = new URL(first.url);
    urlPassword = decodeURIComponent(firstUrl.password);
    expect(first.dataDir).toBe(path.resolve(dataDir));
    expect(firstUrl.hostname).toBe("127.0.0.1");
    expect(Number(firstUrl.port)).toBeGreaterThan(0);
    expect(firstUrl.pathname).toBe("/embedded_test");
    const [version] = await query<{ server_version: string }>(first.url, "SHOW server_version");
    expect(version?.server_version).toMatch(/^\d+/);

    // What openDatabase does with the embedded database's URL.
    const migrations = await readMigrations(MIGRATIONS_DIR);
    expect(migrations.length).toBeGreaterThan(0);
    const migrated = await applyMigrations({ url: first.url, migrationsDir: MIGRATIONS_DIR });
    expect(migrated.applied).toEqual(migrations.map((migration) => migration.name));
    expect(migrated.alreadyApplied).toEqual([]);

    const userId = `embedded-${randomUUID()}`;
    await query(first.url, "INSERT INTO tasks (user_id, title) VALUES ($1, $2)", [userId, "survives a restart"]);

    await first.stop();
    running.splice(running.indexOf(first), 1);
    await expect(query(first.url, "SELECT 1")).rejects.toThrow();

    const second = await startEmbeddedPostgres({ dataDir, database: "embedded_test" });
    running.push(second);
    // The same cluster: the password kept beside it still logs in.
    expect(new URL(second.url).password).toBe(firstUrl.password);
    const rows = await query<{ title: string }>(second.url, "SELECT title FROM tasks WHERE user_id = $1", [userId]);
    expect(rows).toEqual([{ title: "survives a restart" }]);
    const again = await applyMigrations({ url: second.url, migrationsDir: MIGRATIONS_DIR });
    expect(again.applied).toEqual([]);
    expect(again.alreadyApplied).toEqual(migrations.map((migration) => migration.name));
  });

  it("should keep the cluster's password in a file only its owner can read", async () => {
    const file = `${path.resolve(dataDir)}.password`;
    const mode = (await stat(file)).mode & 0o777;
    expect(mode & 0o077).toBe(0);
    expect(mode).toBe(0o600);
    const password = (await readFile(file, "utf8")).trim();
    expect(password.length).toBeGreaterThanOrEqual(24);
    expect(urlPassword).toBe(password);
  });
});
