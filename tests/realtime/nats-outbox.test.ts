import { randomUUID } from "node:crypto";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { decodeNotification, userChannel } from "../../src/realtime/protocol.js";
import { migratedDatabase, newUserId } from "../helpers/db.js";

/**
 * The outbox's contract with the triggers (20261201100000_realtime_outbox):
 * every wake-up goes through todo_realtime_send(), which NOTIFYs under the
 * postgres transport and writes a realtime_outbox row, in the writing
 * transaction, under nats. A trigger that called pg_notify itself would wake
 * postgres subscribers only, and nats ones never: the first test finds it.
 * A database of its own, because the transport is one row per database.
 */
describe("the realtime outbox, at the database", () => {
  let database: { url: string; drop: () => Promise<void> };
  let admin: pg.Client;
  let listener: pg.Client;
  const heard: { channel: string; payload: string }[] = [];

  beforeAll(async () => {
    database = await migratedDatabase();
    admin = new pg.Client({ connectionString: database.url });
    listener = new pg.Client({ connectionString: database.url });
    await Promise.all([admin.connect(), listener.connect()]);
    listener.on("notification", (note) => heard.push({ channel: note.channel, payload: note.payload ?? "" }));
  });
  afterAll(async () => {
    await Promise.all([admin?.end(), listener?.end()]);
    await database?.drop();
  });

  async function setTransport(kind: "postgres" | "nats"): Promise<void> {
    await admin.query(`UPDATE realtime_settings SET transport = $1 WHERE id = 1`, [kind]);
  }

  async function outboxOf(userId: string): Promise<{ channel: string; payload: string; xact_id: string }[]> {
    const { rows } = await admin.query<{ channel: string; payload: string; xact_id: string }>(
      `SELECT channel, payload, xact_id::text FROM realtime_outbox WHERE channel = $1 ORDER BY id`,
      [userChannel(userId)],
    );
    return rows;
  }

  it("should have no function but todo_realtime_send call pg_notify", async () => {
    const { rows } = await admin.query<{ name: string }>(
      `SELECT p.proname AS name FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
       WHERE n.nspname = 'public' AND p.prosrc ILIKE '%pg_notify%' ORDER BY 1`,
    );
    expect(rows.map((row) => row.name)).toEqual(["todo_realtime_send"]);
  });

  it("should NOTIFY and write no outbox row under the postgres transport", async () => {
    await setTransport("postgres");
    const userId = newUserId("outbox-pg");
    await listener.query(`LISTEN "${userChannel(userId)}"`);
    await admin.query(`INSERT INTO tasks (user_id, title) VALUES ($1, 'notified')`, [userId]);
    await expect.poll(() => heard.filter((note) => note.channel === userChannel(userId)).length).toBe(1);
    expect(await outboxOf(userId)).toEqual([]);
  });

  it("should write one outbox row per wake-up, in the writing transaction, and NOTIFY nothing under nats", async () => {
    await setTransport("nats");
    try {
      const userId = newUserId("outbox-nats");
      await listener.query(`LISTEN "${userChannel(userId)}"`);
      await admin.query("BEGIN");
      const { rows } = await admin.query<{ id: string; xact: string }>(
        `INSERT INTO tasks (user_id, title) VALUES ($1, 'outboxed') RETURNING id::text, pg_current_xact_id()::text AS xact`,
        [userId],
      );
      const [task] = rows;
      await admin.query(`UPDATE tasks SET title = 'outboxed again' WHERE id = $1`, [task!.id]);
      await admin.query("COMMIT");

      const written = await outboxOf(userId);
      expect(written.map((row) => row.xact_id)).toEqual([task!.xact, task!.xact]);
      const decoded = written.map((row) => decodeNotification(row.payload));
      expect(decoded).toMatchObject([{ notification: { kind: "task", taskId: task!.id } }, { notification: { kind: "task", taskId: task!.id } }]);
      // A round trip on the listening connection: anything NOTIFYed before it would have arrived.
      await listener.query("SELECT 1");
      expect(heard.filter((note) => note.channel === userChannel(userId))).toEqual([]);
    } finally {
      await setTransport("postgres");
    }
  });

  it("should leave no outbox row for a write that rolled back", async () => {
    await setTransport("nats");
    try {
      const userId = newUserId("outbox-rollback");
      await admin.query("BEGIN");
      await admin.query(`INSERT INTO tasks (id, user_id, title) VALUES ($1, $2, 'never')`, [randomUUID(), userId]);
      expect(await outboxOf(userId)).toHaveLength(1);
      await admin.query("ROLLBACK");
      expect(await outboxOf(userId)).toEqual([]);
    } finally {
      await setTransport("postgres");
    }
  });
});
