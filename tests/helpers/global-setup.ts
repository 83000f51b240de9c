import { randomBytes } from "node:crypto";
import { chmod, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import pg from "pg";
import type { TestProject } from "vitest/node";
import { startEmbeddedPostgres, type EmbeddedDatabase } from "../../src/db/embedded.js";
import { applyMigrations } from "../../src/db/migrate.js";
import { MIGRATIONS_DIR } from "../../src/db/open.js";
import { startNatsServer, type NatsServer } from "./nats.js";

declare module "vitest" {
  export interface ProvidedContext {
    /** A migrated database of this run's own. */
    databaseUrl: string;
    /** The server's maintenance database, for tests that create databases of their own. */
    adminUrl: string;
    /** "service" (TEST_DATABASE_URL) or "embedded". */
    databaseKind: string;
    /** With REALTIME_TRANSPORT=nats: the run's nats-server, which every test server uses; else "". */
    natsUrl: string;
  }
}

/**
 * One Postgres for the whole run: the machine's service when TEST_DATABASE_URL
 * is set, otherwise an embedded one in a temporary directory. Each run gets a
 * fresh database, so runs never see each other's rows. With
 * REALTIME_TRANSPORT=nats, one nats-server for the run too: test servers then
 * use the nats transport (tests/helpers/server.ts).
 */
export default async function setup(project: TestProject) {
  let embedded: EmbeddedDatabase | undefined;
  let tempDir: string | undefined;
  let adminUrl: string;
  const serviceUrl = process.env.TEST_DATABASE_URL;
  if (serviceUrl) {
    adminUrl = serviceUrl;
  } else {
    tempDir = await mkdtemp(path.join(tmpdir(), "todo-api-pg-"));
    // As root, Postgres runs as the `postgres` user, which must be able to enter the directory.
    await chmod(tempDir, 0o755);
    embedded = await startEmbeddedPostgres({ dataDir: path.join(tempDir, "data"), database: "postgres" });
    adminUrl = embedded.url;
  }

  const name = `todo_test_${Date.now()}_${randomBytes(3).toString("hex")}`;
  const admin = new pg.Client({ connectionString: adminUrl });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${name}`);
  await admin.end();
  const databaseUrl = withDatabase(adminUrl, name);
  await applyMigrations({ url: databaseUrl, migrationsDir: MIGRATIONS_DIR });

  project.provide("databaseUrl", databaseUrl);
  project.provide("adminUrl", adminUrl);
  project.provide("databaseKind", serviceUrl ? "service" : "embedded");
  let nats: NatsServer | undefined;
  if (process.env.REALTIME_TRANSPORT === "nats") nats = await startNatsServer();
  project.provide("natsUrl", nats?.url ?? "");

  return async () => {
    await nats?.dispose();
    const client = new pg.Client({ connectionString: adminUrl });
    await client.connect();
    await client.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
    await client.end();
    await embedded?.stop();
    if (tempDir) await rm(tempDir, { recursive: true, force: true });
  };
}

export function withDatabase(url: string, database: string): string {
  const parsed = new URL(url);
  parsed.pathname = `/${database}`;
  return parsed.toString();
}
