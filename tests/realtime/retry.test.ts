import type pg from "pg";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import type { Db } from "../../src/db/client.js";
import { toGlobalId } from "../../src/lib/ids.js";
import { databaseUrl, testDb } from "../helpers/db.js";
import { capturingLogger, newUser } from "../helpers/server.js";
import {
  adminClient,
  appendVia,
  live,
  MESSAGE_ADDED,
  newConversation,
  nextMessage,
  nextTaskChange,
  startLiveServer,
  TASK_CHANGED,
  type LiveServer,
  insertTurn,
} from "./support.js";

/**
 * The app's pool has one connection and gives up waiting for it after 2 s
 * (300 ms, as it was, also failed the set-up's own reads now and then on a
 * loaded machine: two subscriptions' catch-ups queue for the one connection).
 * The test holds that connection in a transaction while it commits through
 * its own, so the hub's re-reads fail; then it lets go.
 */
describe("a re-read that fails", () => {
  let db: Db;
  let server: LiveServer;
  let admin: pg.Client;
  const { logger, lines } = capturingLogger();

  /** Warnings and errors logged so far. */
  const failures = () => lines.filter((line) => (JSON.parse(line) as { level: number }).level >= 40).length;

  beforeAll(async () => {
    db = testDb({ poolSize: 1, connectionTimeoutMs: 2_000 });
    server = await startLiveServer({ db, logger });
    admin = await adminClient(databaseUrl());
  });
  afterAll(async () => {
    await server.close();
    await db.$disconnect();
    await admin.end();
  });

  /** Holds the pool's only connection until the returned function is called. */
  async function holdThePool(): Promise<() => Promise<void>> {
    let release: () => void = () => {};
    const released = new Promise<void>((resolve) => (release = resolve));
    let held: () => void = () => {};
    const holding = new Promise<void>((resolve) => (held = resolve));
    const transaction = db.$transaction(
      async (tx) => {
        await tx.$queryRaw`SELECT 1`;
        held();
        await released;
      },
      { timeout: 30_000 },
    );
    await holding;
    return async () => {
      release();
      await transaction;
    };
  }

  it("should still deliver, once each, a task change and a message whose re-read failed", async () => {
    const user = await newUser(server);
    const conversation = await newConversation(db, user.id);
    const client = server.connect(user.token);
    const tasks = await live(server, client, TASK_CHANGED);
    const messages = await live(server, client, MESSAGE_ADDED, { conversationId: conversation.globalId });

    const release = await holdThePool();
    const before = failures();
    await admin.query(`INSERT INTO tasks (user_id, title) VALUES ($1, 'while the pool was busy')`, [user.id]);
    await admin.query(
      `WITH bumped AS (UPDATE conversations SET last_seq = last_seq + 1 WHERE id = $1::uuid RETURNING user_id, last_seq)
       INSERT INTO messages (conversation_id, user_id, role, content, seq)
       SELECT $1::uuid, user_id, 'user', 'while the pool was busy', last_seq FROM bumped`,
      [conversation.id],
    );
    await vi.waitFor(() => expect(failures(), "failed re-reads").toBeGreaterThan(before), { timeout: 15_000, interval: 10 });
    await release();

    expect(await nextTaskChange(tasks)).toMatchObject({ kind: "CREATED", task: { title: "while the pool was busy" } });
    expect(await nextMessage(messages)).toMatchObject({ seq: 1, content: "while the pool was busy" });
    // Once: the next events are the next commits, with nothing repeated before them.
    await admin.query(`INSERT INTO tasks (user_id, title) VALUES ($1, 'sentinel')`, [user.id]);
    expect(await nextTaskChange(tasks)).toMatchObject({ kind: "CREATED", task: { title: "sentinel" } });
    expect(tasks.pending()).toEqual([]);
    expect(messages.pending()).toEqual([]);
    tasks.dispose();
    messages.dispose();
  });
  it("should deliver a turn's last change to turnUpdated although its re-read failed and no notification follows", async () => {
    const user = await newUser(server);
    const conversation = await newConversation(db, user.id);
    const [message] = await appendVia(db, user.id, conversation.id, ["a turn"]);
    const turnId = await insertTurn(admin, { userId: user.id, conversationId: conversation.id, userMessageId: message!.id });
    const client = server.connect(user.token);
    const established = server.app.turns.establishedCount;
    const turns = client.subscribe<{ turnUpdated: { id: string; status: string } }>(
      `subscription T($c: ID!) { turnUpdated(conversationId: $c) { id status } }`,
      { c: conversation.globalId },
    );
    await vi.waitFor(() => expect(server.app.turns.establishedCount, "turnUpdated listens").toBeGreaterThan(established), {
      timeout: 10_000,
      interval: 10,
    });

    const release = await holdThePool();
    const before = failures();
    // The turn's end: the last change it will ever have, so no later notification would read it again.
    await admin.query("UPDATE turns SET status = 'COMPLETED', finished_at = now() WHERE id = $1", [turnId]);
    await vi.waitFor(() => expect(failures(), "failed re-reads").toBeGreaterThan(before), { timeout: 15_000, interval: 10 });
    await release();

    expect((await turns.next(15_000)).data?.turnUpdated).toEqual({ id: toGlobalId("Turn", turnId), status: "COMPLETED" });
    expect(turns.pending()).toEqual([]);
    turns.dispose();
  });
});
