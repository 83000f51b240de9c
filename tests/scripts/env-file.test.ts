import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import pg from "pg";
import { afterAll, describe, it } from "vitest";
import { freePort } from "../../src/db/embedded.js";
import { readMigrations } from "../../src/db/migrate.js";
import { MIGRATIONS_DIR } from "../../src/db/open.js";
import { freshDatabase } from "../helpers/db.js";
import { runScript, stopAll, type Program } from "../helpers/process.js";

async function appliedMigrations(url: string): Promise<string[]> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    const { rows } = await client.query<{ migration_name: string }>(
      `SELECT migration_name FROM "_prisma_migrations" WHERE finished_at IS NOT NULL ORDER BY migration_name`,
    );
    return rows.map((row) => row.migration_name);
  } finally {
    await client.end();
  }
}

// Every entry point imports src/boot/load-env.ts first; db:migrate stands for all of them.
describe("./.env for npm run db:migrate", () => {
  const started: Program[] = [];
  const cleanup: (() => Promise<void>)[] = [];

  async function dirWithEnv(contents: string): Promise<string> {
    const dir = await mkdtemp(path.join(tmpdir(), "todo-env-"));
    cleanup.push(() => rm(dir, { recursive: true, force: true }));
    await writeFile(path.join(dir, ".env"), contents, { mode: 0o600 });
    return dir;
  }

  async function database(): Promise<string> {
    const fresh = await freshDatabase();
    cleanup.push(fresh.drop);
    return fresh.url;
  }

  afterAll(async () => {
    await stopAll(started);
    for (const step of cleanup) await step();
  });

  it.concurrent("should migrate the database DATABASE_URL in ./.env names", async ({ expect }) => {
    const url = await database();
    const cwd = await dirWithEnv(`# local settings\nDATABASE_URL=${url}\nLOG_LEVEL=warn\n`);
    const migrate = runScript("scripts/migrate.ts", { cwd }, started);
    expect(await migrate.exit()).toEqual({ code: 0, signal: null });
    expect(migrate.stderr()).toBe("");
    expect(await appliedMigrations(url)).toEqual((await readMigrations(MIGRATIONS_DIR)).map((migration) => migration.name));
  });

  it.concurrent("should let a variable already in the environment win over ./.env", async ({ expect }) => {
    const url = await database();
    const cwd = await dirWithEnv(`DATABASE_URL=postgresql://app@127.0.0.1:${await freePort()}/elsewhere\n`);
    const migrate = runScript("scripts/migrate.ts", { cwd, env: { DATABASE_URL: url, LOG_LEVEL: "warn" } }, started);
    expect(await migrate.exit()).toEqual({ code: 0, signal: null });
    expect(migrate.stderr()).toBe("");
    expect(await appliedMigrations(url)).toEqual((await readMigrations(MIGRATIONS_DIR)).map((migration) => migration.name));
  });

  it.concurrent("should stop with one line when ./.env cannot be read", async ({ expect }) => {
    const cwd = await mkdtemp(path.join(tmpdir(), "todo-env-"));
    cleanup.push(() => rm(cwd, { recursive: true, force: true }));
    await mkdir(path.join(cwd, ".env"));
    const migrate = runScript("scripts/migrate.ts", { cwd }, started);
    expect(await migrate.exit()).toEqual({ code: 1, signal: null });
    expect(migrate.stderr()).toMatch(/^Cannot read \.env: \.env is not a file\n$/);
    expect(migrate.stdout()).toBe("");
  });
});
