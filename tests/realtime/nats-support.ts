import { randomBytes } from "node:crypto";
import pg from "pg";
import { expect, vi } from "vitest";
import type { Db } from "../../src/db/client.js";
import type { AppDeps } from "../../src/server/app.js";
import type { NatsSettings } from "../../src/realtime/transport.js";
import { migratedDatabase, testDb } from "../helpers/db.js";
import { startNatsServer, type NatsServer } from "../helpers/nats.js";
import { startLiveServer, type LiveServer } from "./support.js";

/**
 * What a nats test stands on: a database of its own (the transport is a
 * setting of the database, so a nats test must not flip the run's shared
 * one), a nats-server of its own, and app instances on both.
 */
export interface NatsRig {
  databaseUrl: string;
  nats: NatsServer;
  /** The transport settings every instance of this rig uses. */
  transport: NatsSettings;
  /** A superuser connection to the rig's database, for raw SQL. */
  admin: pg.Client;
  /** An app instance on the nats transport, closed by dispose(). */
  instance(options?: Partial<AppDeps>): Promise<LiveServer>;
  /** Closes every instance started so far (the next one started then leads the relay). */
  closeInstances(): Promise<void>;
  /** Rows waiting in the outbox now. */
  outboxSize(): Promise<number>;
  dispose(): Promise<void>;
}

/** Quick timings, so that a test sees reconnects and takeovers in well under a second. */
export const FAST_TRANSPORT: NonNullable<AppDeps["listener"]> = {
  heartbeatIntervalMs: 500,
  heartbeatTimeoutMs: 1000,
  backoff: { initialMs: 50, maxMs: 500 },
};

export async function natsRig(): Promise<NatsRig> {
  const database = await migratedDatabase();
  const nats = await startNatsServer();
  const admin = new pg.Client({ connectionString: database.url });
  await admin.connect();
  const transport: NatsSettings = { kind: "nats", servers: [nats.url], subjectPrefix: `todo.t${randomBytes(4).toString("hex")}` };
  const servers: LiveServer[] = [];
  const dbs: Db[] = [];
  return {
    databaseUrl: database.url,
    nats,
    transport,
    admin,
    async instance(options = {}) {
      const db = testDb({ url: database.url });
      dbs.push(db);
      const server = await startLiveServer({ db, listenUrl: database.url, transport, listener: FAST_TRANSPORT, ...options });
      servers.push(server);
      return server;
    },
    async closeInstances() {
      await Promise.all(servers.splice(0).map((server) => server.close()));
    },
    async outboxSize() {
      const { rows } = await admin.query<{ n: number }>(`SELECT count(*)::int AS n FROM realtime_outbox`);
      return rows[0]?.n ?? 0;
    },
    async dispose() {
      await Promise.all(servers.map((server) => server.close().catch(() => {})));
      await Promise.all(dbs.map((db) => db.$disconnect().catch(() => {})));
      await admin.end().catch(() => {});
      await nats.dispose();
      await database.drop();
    },
  };
}

/** Waits (vi.waitFor) until `condition` holds, failing with `what` after `timeoutMs`. */
export async function until(condition: () => boolean | Promise<boolean>, what: string, timeoutMs = 15_000): Promise<void> {
  await vi.waitFor(async () => expect(await condition(), what).toBe(true), { timeout: timeoutMs, interval: 10 });
}
