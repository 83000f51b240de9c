import { createHash } from "node:crypto";
import { cp, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import pg from "pg";
import { afterEach, describe, expect, it } from "vitest";
import { applyMigrations, MigrationError, PRISMA_ADVISORY_LOCK_KEY } from "../../src/db/migrate.js";
import { MIGRATIONS_DIR } from "../../src/db/open.js";
import { freshDatabase } from "../helpers/db.js";
import { expectedShape } from "../helpers/schema-shape.js";

interface MigrationRow {
  id: string;
  checksum: string;
  finished_at: Date | null;
  migration_name: string;
  logs: string | null;
  rolled_back_at: Date | null;
  started_at: Date;
  applied_steps_count: number;
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** The migration directories in prisma/migrations, in the order they must apply. */
async function migrationNames(dir = MIGRATIONS_DIR): Promise<string[]> {
  const entries = await readdir(dir, { withFileTypes: true });
  return entries
    .filter((e) => e.isDirectory())
    .map((e) => e.name)
    .sort();
}

function sha256Hex(bytes: Buffer | string): string {
  return createHash("sha256").update(bytes).digest("hex");
}

describe("applyMigrations", () => {
  const cleanups: (() => Promise<void>)[] = [];

  afterEach(async () => {
    // Last opened, first closed: clients before the databases they are connected to.
    while (cleanups.length > 0) await cleanups.pop()?.();
  });

  async function newDatabase(): Promise<string> {
    const fresh = await freshDatabase();
    cleanups.push(fresh.drop);
    return fresh.url;
  }

  async function connect(url: string): Promise<pg.Client> {
    const client = new pg.Client({ connectionString: url });
    await client.connect();
    cleanups.push(async () => {
      await client.end();
    });
    return client;
  }

  /** A copy of prisma/migrations the test may edit. */
  async function migrationsCopy(): Promise<string> {
    const dir = await mkdtemp(path.join(tmpdir(), "todo-migrations-"));
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    await cp(MIGRATIONS_DIR, dir, { recursive: true });
    return dir;
  }

  async function addMigration(dir: string, name: string, sql: string): Promise<void> {
    await mkdir(path.join(dir, name));
    await writeFile(path.join(dir, name, "migration.sql"), sql);
  }

  async function rows(client: pg.Client): Promise<MigrationRow[]> {
    const result = await client.query<MigrationRow>(`SELECT * FROM "_prisma_migrations" ORDER BY started_at, migration_name`);
    return result.rows;
  }

  async function publicTables(client: pg.Client): Promise<string[]> {
    const result = await client.query<{ table_name: string }>(
      `SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' ORDER BY table_name`,
    );
    return result.rows.map((r) => r.table_name);
  }

  it("should apply every migration on a fresh database", async () => {
    const url = await newDatabase();
    const names = await migrationNames();
    expect(names.length).toBeGreaterThan(0);

    const result = await applyMigrations({ url, migrationsDir: MIGRATIONS_DIR });

    expect(result).toEqual({ applied: names, alreadyApplied: [] });
    const client = await connect(url);
    // Every table of the data model, and nothing else but Prisma's bookkeeping.
    const modelTables = Object.keys((await expectedShape()).tables);
    expect(modelTables).toEqual(expect.arrayContaining(["tasks", "conversations", "messages"]));
    expect(await publicTables(client)).toEqual(["_prisma_migrations", ...modelTables].sort());
    const enums = await client.query(`SELECT 1 FROM pg_type WHERE typname = 'message_role'`);
    expect(enums.rowCount).toBe(1);
    expect((await rows(client)).map((r) => r.migration_name)).toEqual(names);
  });

  it("should be a no-op on re-run", async () => {
    const url = await newDatabase();
    const names = await migrationNames();
    await applyMigrations({ url, migrationsDir: MIGRATIONS_DIR });
    const client = await connect(url);
    const before = await rows(client);

    const result = await applyMigrations({ url, migrationsDir: MIGRATIONS_DIR });

    expect(result).toEqual({ applied: [], alreadyApplied: names });
    const after = await rows(client);
    expect(after).toHaveLength(names.length);
    // Same rows, same ids, same started_at/finished_at: nothing was re-recorded.
    expect(after).toEqual(before);
  });

  it("should serialise two appliers started at once", async () => {
    const url = await newDatabase();
    // A slow extra migration widens the window in which unserialised appliers would collide.
    const dir = await migrationsCopy();
    await addMigration(dir, "29991231000000_slow", `SELECT pg_sleep(0.3);\nCREATE TABLE slow_probe (id int);\n`);
    const names = await migrationNames(dir);

    const results = await Promise.all([applyMigrations({ url, migrationsDir: dir }), applyMigrations({ url, migrationsDir: dir })]);

    // The lock spans a whole run: one applier did everything, the other found it done.
    const applied = results.flatMap((r) => r.applied).sort();
    expect(applied).toEqual(names);
    expect(results.map((r) => r.applied.length).sort()).toEqual([0, names.length]);
    for (const result of results) {
      expect([...result.applied, ...result.alreadyApplied].sort()).toEqual(names);
    }
    const client = await connect(url);
    const recorded = await rows(client);
    expect(recorded.map((r) => r.migration_name).sort()).toEqual(names);
    expect(recorded.every((r) => r.finished_at !== null)).toBe(true);
    expect(await publicTables(client)).toContain("slow_probe");
  });

  it("should wait while another session holds Prisma's advisory lock", async () => {
    const url = await newDatabase();
    const holder = await connect(url);
    await holder.query("SELECT pg_advisory_lock($1)", [PRISMA_ADVISORY_LOCK_KEY]);

    let settled = false;
    const running = applyMigrations({ url, migrationsDir: MIGRATIONS_DIR }).finally(() => {
      settled = true;
    });
    await new Promise((resolve) => setTimeout(resolve, 500));
    expect(settled).toBe(false);
    // It has not even created its table: it is waiting for the lock, as `prisma migrate deploy` would.
    expect(await publicTables(holder)).toEqual([]);

    await holder.query("SELECT pg_advisory_unlock($1)", [PRISMA_ADVISORY_LOCK_KEY]);
    const result = await running;
    expect(result.applied).toEqual(await migrationNames());
  });

  it("should refuse a changed applied migration", async () => {
    const url = await newDatabase();
    const dir = await migrationsCopy();
    const names = await migrationNames(dir);
    await applyMigrations({ url, migrationsDir: dir });
    const client = await connect(url);
    const rowsBefore = await rows(client);
    const tablesBefore = await publicTables(client);

    const edited = names[0];
    if (edited === undefined) throw new Error("no migrations");
    const file = path.join(dir, edited, "migration.sql");
    await writeFile(file, `${await readFile(file, "utf8")}\nCREATE TABLE sneaky (id int);\n`);
    // A new migration after the edited one must not run either.
    await addMigration(dir, "29991231000000_after", `CREATE TABLE after_edit (id int);\n`);

    const attempt = applyMigrations({ url, migrationsDir: dir });
    await expect(attempt).rejects.toBeInstanceOf(MigrationError);
    await expect(attempt).rejects.toThrow(new RegExp(`Migration ${edited} was modified after it was applied`));

    expect(await rows(client)).toEqual(rowsBefore);
    expect(await publicTables(client)).toEqual(tablesBefore);
  });

  it("should record rows as Prisma records them", async () => {
    const url = await newDatabase();
    const names = await migrationNames();
    const startedBefore = new Date();
    await applyMigrations({ url, migrationsDir: MIGRATIONS_DIR });
    const client = await connect(url);

    const columns = await client.query(`
      SELECT column_name, data_type, character_maximum_length, is_nullable, column_default
      FROM information_schema.columns
      WHERE table_schema = 'public' AND table_name = '_prisma_migrations'
      ORDER BY ordinal_position`);
    const column = (name: string, type: string, length: number | null, nullable: boolean, fallback: string | null = null) => ({
      column_name: name,
      data_type: type,
      character_maximum_length: length,
      is_nullable: nullable ? "YES" : "NO",
      column_default: fallback,
    });
    expect(columns.rows).toEqual([
      column("id", "character varying", 36, false),
      column("checksum", "character varying", 64, false),
      column("finished_at", "timestamp with time zone", null, true),
      column("migration_name", "character varying", 255, false),
      column("logs", "text", null, true),
      column("rolled_back_at", "timestamp with time zone", null, true),
      column("started_at", "timestamp with time zone", null, false, "now()"),
      column("applied_steps_count", "integer", null, false, "0"),
    ]);
    const primaryKey = await client.query(`
      SELECT a.attname
      FROM pg_index i
      JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY (i.indkey)
      WHERE i.indrelid = '"_prisma_migrations"'::regclass AND i.indisprimary`);
    expect(primaryKey.rows).toEqual([{ attname: "id" }]);

    const recorded = await rows(client);
    expect(recorded.map((r) => r.migration_name)).toEqual(names);
    for (const row of recorded) {
      const bytes = await readFile(path.join(MIGRATIONS_DIR, row.migration_name, "migration.sql"));
      expect(row.checksum).toBe(sha256Hex(bytes));
      expect(row.checksum).toMatch(/^[0-9a-f]{64}$/);
      expect(row.id).toMatch(UUID);
      expect(row.logs).toBeNull();
      expect(row.rolled_back_at).toBeNull();
      expect(row.applied_steps_count).toBe(1);
      expect(row.finished_at).toBeInstanceOf(Date);
      // Compared with second-level slack: the database clock, not ours, stamps these.
      expect(row.started_at.getTime()).toBeGreaterThan(startedBefore.getTime() - 5_000);
      expect(row.finished_at!.getTime()).toBeGreaterThanOrEqual(row.started_at.getTime());
    }
    expect(new Set(recorded.map((r) => r.id)).size).toBe(recorded.length);
  });

  it("should leave a failed migration recorded and refuse to continue", async () => {
    const url = await newDatabase();
    const dir = await migrationsCopy();
    const good = await migrationNames(dir);
    const broken = "29991231000000_broken";
    const brokenSql = `CREATE TABLE ok_part (id int);\nSELECT nonsense_fn();\n`;
    await addMigration(dir, broken, brokenSql);

    const attempt = applyMigrations({ url, migrationsDir: dir });
    await expect(attempt).rejects.toBeInstanceOf(MigrationError);
    await expect(attempt).rejects.toThrow(new RegExp(`Migration ${broken} failed: .*nonsense_fn`));

    const client = await connect(url);
    const recorded = await rows(client);
    expect(recorded.map((r) => r.migration_name)).toEqual([...good, broken]);
    const failed = recorded.find((r) => r.migration_name === broken);
    expect(failed).toMatchObject({
      checksum: sha256Hex(brokenSql),
      finished_at: null,
      rolled_back_at: null,
      applied_steps_count: 0,
    });
    expect(failed?.logs).toMatch(/function nonsense_fn\(\) does not exist/);
    // The migrations before it are applied; its own partial effects are rolled back.
    expect(recorded.filter((r) => r.migration_name !== broken).every((r) => r.finished_at !== null)).toBe(true);
    expect(await publicTables(client)).not.toContain("ok_part");
    expect(await publicTables(client)).toContain("tasks");

    // Even with the script fixed, the recorded failure blocks until it is resolved.
    await writeFile(path.join(dir, broken, "migration.sql"), `CREATE TABLE ok_part (id int);\n`);
    const rerun = applyMigrations({ url, migrationsDir: dir });
    await expect(rerun).rejects.toBeInstanceOf(MigrationError);
    await expect(rerun).rejects.toThrow(/prisma migrate resolve/);
    await expect(rerun).rejects.toThrow(new RegExp(broken));
    expect(await rows(client)).toEqual(recorded);
    expect(await publicTables(client)).not.toContain("ok_part");
  });

  it("should accept a migration whose file gained CRLF line endings after it was applied", async () => {
    const url = await newDatabase();
    const dir = await migrationsCopy();
    const names = await migrationNames(dir);
    await applyMigrations({ url, migrationsDir: dir });
    for (const name of names) {
      const file = path.join(dir, name, "migration.sql");
      const text = await readFile(file, "utf8");
      expect(text).not.toContain("\r\n");
      await writeFile(file, text.replaceAll("\n", "\r\n"));
    }

    expect(await applyMigrations({ url, migrationsDir: dir })).toEqual({ applied: [], alreadyApplied: names });
  });

  it("should accept a migration applied with CRLF line endings whose file now has LF", async () => {
    // Written on Windows (the recorded checksum is of the CRLF text), checked out with LF: Prisma accepts it.
    const url = await newDatabase();
    const dir = await migrationsCopy();
    const names = await migrationNames(dir);
    const lf = new Map<string, string>();
    for (const name of names) {
      const file = path.join(dir, name, "migration.sql");
      const text = await readFile(file, "utf8");
      lf.set(name, text);
      await writeFile(file, text.replaceAll("\n", "\r\n"));
    }
    await applyMigrations({ url, migrationsDir: dir });
    const client = await connect(url);
    for (const row of await rows(client)) {
      expect(row.checksum).toBe(sha256Hex(lf.get(row.migration_name)!.replaceAll("\n", "\r\n")));
    }
    for (const [name, text] of lf) await writeFile(path.join(dir, name, "migration.sql"), text);

    expect(await applyMigrations({ url, migrationsDir: dir })).toEqual({ applied: [], alreadyApplied: names });
  });

  it("should still refuse a changed migration whose line endings also changed", async () => {
    const url = await newDatabase();
    const dir = await migrationsCopy();
    const names = await migrationNames(dir);
    await applyMigrations({ url, migrationsDir: dir });
    const edited = names[0]!;
    const file = path.join(dir, edited, "migration.sql");
    const text = await readFile(file, "utf8");
    await writeFile(file, `${text}-- a comment\n`.replaceAll("\n", "\r\n"));

    await expect(applyMigrations({ url, migrationsDir: dir })).rejects.toThrow(new RegExp(`Migration ${edited} was modified after it was applied`));
  });
});
