import { randomUUID } from "node:crypto";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { closeDb, createDb, poolStats, type Db } from "../../src/db/client.js";
import type { DatabaseDriver } from "../../src/db/settings.js";
import { databaseUrl } from "../helpers/db.js";
import { proxyNeonTo, type NeonWsProxy } from "../helpers/neon-proxy.js";

/**
 * closeDb is the shutdown's "database pool" step (src/boot/start-api.ts, the MCP server's too).
 * PrismaPg given a pool of ours leaves it open on $disconnect; after closeDb no connection of
 * the client's pool may remain, on either driver.
 */
describe.each<DatabaseDriver>(["pg", "neon"])("closing the database client (%s driver)", (driver) => {
  let admin: pg.Client;
  let proxy: NeonWsProxy | undefined;

  /** A client whose connections carry a name of their own, so the test counts only them. */
  const namedDb = () => {
    const applicationName = `close-db-${driver}-${randomUUID()}`;
    const url = new URL(databaseUrl());
    url.searchParams.set("application_name", applicationName);
    return { applicationName, db: createDb({ url: url.toString(), driver, poolSize: 3, connectionTimeoutMs: 5000 }) };
  };
  const connections = async (applicationName: string) => {
    const { rows } = await admin.query<{ n: number }>("SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name = $1", [
      applicationName,
    ]);
    return rows[0]?.n ?? 0;
  };
  /** Three statements at once, each holding its connection a moment, and a transaction: the pool opens all three. */
  const useEveryConnection = async (db: Db) => {
    await Promise.all([1, 2].map(() => db.$queryRaw`SELECT 1 AS one FROM pg_sleep(0.2)`));
    await Promise.all([
      db.$queryRaw`SELECT 1 AS one FROM pg_sleep(0.2)`,
      db.$transaction(async (tx) => tx.$queryRaw`SELECT 1 AS one FROM pg_sleep(0.2)`),
    ]);
  };

  beforeAll(async () => {
    if (driver === "neon") proxy = await proxyNeonTo(databaseUrl());
    admin = new pg.Client({ connectionString: databaseUrl() });
    await admin.connect();
  });
  afterAll(async () => {
    await admin?.end();
    await proxy?.close();
  });

  it("should leave no connection of the pool open once closed", async () => {
    const { applicationName, db } = namedDb();
    await useEveryConnection(db);
    expect(poolStats(db)?.total, "connections the pool opened").toBeGreaterThan(1);
    expect(await connections(applicationName)).toBe(poolStats(db)?.total);

    await closeDb(db);

    expect(poolStats(db)?.total, "connections left in the pool").toBe(0);
    // A backend leaves pg_stat_activity a moment after its client's Terminate.
    await vi.waitFor(async () => expect(await connections(applicationName), "backends of the pool").toBe(0), { timeout: 5000, interval: 20 });
  });

  it("should close a client that is closed twice without an error", async () => {
    const { applicationName, db } = namedDb();
    await db.$queryRaw`SELECT 1 AS one`;

    await closeDb(db);
    await expect(closeDb(db)).resolves.toBeUndefined();

    await vi.waitFor(async () => expect(await connections(applicationName), "backends of the pool").toBe(0), { timeout: 5000, interval: 20 });
  });
});
