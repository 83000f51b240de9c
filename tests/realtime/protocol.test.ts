import { randomUUID } from "node:crypto";
import fc from "fast-check";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { PgListener } from "../../src/realtime/listener.js";
import { decodeNotification, MAX_PAYLOAD_BYTES, parseNotification, userChannel, type Notification } from "../../src/realtime/protocol.js";
import { databaseUrl, newUserId } from "../helpers/db.js";
import { capturingLogger, newUser, onNatsTransport } from "../helpers/server.js";
import {
  ADD_TASK,
  adminClient,
  insertTurn,
  live,
  nextTaskChange,
  startLiveServer,
  TASK_CHANGED,
  within,
  type LiveServer,
  type TaskView,
} from "./support.js";

/**
 * The notification protocol (src/realtime/protocol.ts): every kind the SQL
 * triggers build, round-tripped through a real trigger on Postgres and a real
 * LISTEN, read back with the one parser; and that parser on payloads no
 * trigger builds.
 */

interface Heard {
  channel: string;
  payload: string;
}

/** A pg connection LISTENing to some channels, with what it heard queued in order. */
class Ear {
  private readonly heard: Heard[] = [];
  private readonly waiters: ((value: Heard) => void)[] = [];
  private readonly barrier = `protocol_barrier_${randomUUID().replaceAll("-", "")}`;
  private barriers = 0;

  private constructor(readonly client: pg.Client) {
    client.on("notification", (message) => {
      const value = { channel: message.channel, payload: message.payload ?? "" };
      const waiter = this.waiters.shift();
      if (waiter) waiter(value);
      else this.heard.push(value);
    });
  }

  static async open(channels: readonly string[]): Promise<Ear> {
    const ear = new Ear(new pg.Client({ connectionString: databaseUrl(), application_name: "todo-protocol-test" }));
    await ear.client.connect();
    for (const channel of [...channels, ear.barrier]) await ear.client.query(`LISTEN "${channel}"`);
    return ear;
  }

  next(): Promise<Heard> {
    const queued = this.heard.shift();
    if (queued) return Promise.resolve(queued);
    return within(new Promise<Heard>((resolve) => this.waiters.push(resolve)), 10_000, "a notification");
  }

  /**
   * Everything heard up to now: Postgres delivers notifications in commit
   * order, so once a barrier sent after the writes arrives, nothing of theirs is still on the way.
   */
  async drain(writer: pg.Client): Promise<Heard[]> {
    this.barriers += 1;
    const mark = String(this.barriers);
    await writer.query("SELECT pg_notify($1, $2)", [this.barrier, mark]);
    const out: Heard[] = [];
    while (out.length < 100) {
      const value = await this.next();
      if (value.channel === this.barrier && value.payload === mark) return out;
      out.push(value);
    }
    throw new Error(`over 100 notifications before the barrier: ${JSON.stringify(out.slice(0, 5))}`);
  }

  close(): Promise<void> {
    return this.client.end();
  }
}

// The triggers' payloads as pg_notify sends them: under REALTIME_TRANSPORT=nats the same payloads go to the
// outbox instead (the same SQL builds them; nats-fanout.test.ts checks that path end to end).
describe.skipIf(onNatsTransport())("the notification protocol, through the real triggers", () => {
  let writer: pg.Client;
  const { logger, lines } = capturingLogger();
  // Not ASCII, with a quote: the channel is md5 of its UTF-8 bytes on both sides.
  const userId = newUserId("protocol-ü-日本-'quoted'");
  const otherUserId = newUserId("protocol-other");
  let ear: Ear;

  /** Heard since the last call, each parsed with the one parser, with the channel it came on. */
  async function parsed(): Promise<{ channel: string; notification: Notification | undefined; bytes: number }[]> {
    const heard = await ear.drain(writer);
    return heard.map(({ channel, payload }) => ({
      channel,
      notification: parseNotification(payload, logger),
      bytes: Buffer.byteLength(payload, "utf8"),
    }));
  }

  async function one(): Promise<Notification> {
    const all = await parsed();
    expect(all.map((heard) => heard.channel)).toEqual([userChannel(userId)]);
    return all[0]!.notification!;
  }

  beforeAll(async () => {
    writer = await adminClient(databaseUrl());
    ear = await Ear.open([userChannel(userId), userChannel(otherUserId)]);
  });
  afterAll(async () => {
    await ear.close();
    await writer.end();
  });

  it("should name the same channel as todo_realtime_channel() for any user id", async () => {
    for (const id of [userId, "a", "", "x".repeat(500), 'emoji 💪 and "quotes" and \\ backslash', "名前"]) {
      const { rows } = await writer.query<{ channel: string }>("SELECT todo_realtime_channel($1) AS channel", [id]);
      expect(userChannel(id)).toBe(rows[0]!.channel);
      expect(Buffer.byteLength(userChannel(id))).toBeLessThanOrEqual(63);
    }
  });

  it("should parse 'message' from a settled message's insert and 'stream' from a streaming one's writes, then 'message' when it settles", async () => {
    const conversationId = await insertConversation(writer, userId);
    expect(await one()).toEqual({ kind: "conversation", op: "INSERT", conversationId });
    const userMessage = await insertMessage(writer, { conversationId, userId, role: "user", content: "hello", seq: 1 });
    expect(await one()).toEqual({ kind: "message", messageId: userMessage, conversationId, seq: 1, status: "COMPLETE" });

    // Lengths are code points: "é" is one, "💪" is one (two UTF-16 units, four bytes).
    const answer = await insertMessage(writer, { conversationId, userId, role: "assistant", content: "Hé 💪", seq: 2, status: "STREAMING" });
    expect(await one()).toEqual({ kind: "stream", messageId: answer, conversationId, seq: 2, length: 4 });
    await writer.query("UPDATE messages SET content = content || ' ok' WHERE id = $1", [answer]);
    expect(await one()).toEqual({ kind: "stream", messageId: answer, conversationId, seq: 2, length: 7 });
    await writer.query("UPDATE messages SET status = 'CANCELLED' WHERE id = $1", [answer]);
    expect(await one()).toEqual({ kind: "message", messageId: answer, conversationId, seq: 2, status: "CANCELLED" });
    // An update that changes neither status nor content is silent.
    await writer.query("UPDATE messages SET tool_plan = 'plan' WHERE id = $1", [answer]);
    expect(await parsed()).toEqual([]);
  });

  it("should parse 'task' from a task's insert, update and delete, and from its move to another user on both channels", async () => {
    const { rows } = await writer.query<{ id: string }>("INSERT INTO tasks (user_id, title) VALUES ($1, 'protocol') RETURNING id", [userId]);
    const taskId = rows[0]!.id;
    expect(await one()).toEqual({ kind: "task", op: "INSERT", taskId });
    await writer.query("UPDATE tasks SET completed = true WHERE id = $1", [taskId]);
    expect(await one()).toEqual({ kind: "task", op: "UPDATE", taskId });
    // A no-op update is silent.
    await writer.query("UPDATE tasks SET completed = true WHERE id = $1", [taskId]);
    expect(await parsed()).toEqual([]);

    await writer.query("UPDATE tasks SET user_id = $2 WHERE id = $1", [taskId, otherUserId]);
    expect((await parsed()).map(({ channel, notification }) => ({ channel, notification }))).toEqual([
      { channel: userChannel(userId), notification: { kind: "task", op: "DELETE", taskId } },
      { channel: userChannel(otherUserId), notification: { kind: "task", op: "UPDATE", taskId } },
    ]);
    await writer.query("UPDATE tasks SET user_id = $2 WHERE id = $1", [taskId, userId]);
    await parsed();
    await writer.query("DELETE FROM tasks WHERE id = $1", [taskId]);
    expect(await one()).toEqual({ kind: "task", op: "DELETE", taskId });
  });

  it("should parse 'conversation' from a conversation's insert, rename, new message and delete, and from its move to another user on both channels", async () => {
    const conversationId = await insertConversation(writer, userId);
    expect(await one()).toEqual({ kind: "conversation", op: "INSERT", conversationId });
    await writer.query("UPDATE conversations SET title = 'renamed' WHERE id = $1", [conversationId]);
    expect(await one()).toEqual({ kind: "conversation", op: "UPDATE", conversationId });
    // New activity: a settled message moves last_seq (as appendMessages does).
    await writer.query("UPDATE conversations SET last_seq = last_seq + 1 WHERE id = $1", [conversationId]);
    expect(await one()).toEqual({ kind: "conversation", op: "UPDATE", conversationId });
    // Silent: an unchanged title, the turn lease taken and given back, and an answer's streaming flushes.
    await writer.query("UPDATE conversations SET title = 'renamed' WHERE id = $1", [conversationId]);
    await writer.query(
      "UPDATE conversations SET turn_lease_id = gen_random_uuid(), turn_lease_expires_at = now() + interval '1 minute' WHERE id = $1",
      [conversationId],
    );
    await writer.query("UPDATE conversations SET turn_lease_id = NULL, turn_lease_expires_at = NULL WHERE id = $1", [conversationId]);
    const answer = await insertMessage(writer, { conversationId, userId, role: "assistant", content: "a", seq: 2, status: "STREAMING" });
    await writer.query("UPDATE messages SET content = content || 'b' WHERE id = $1", [answer]);
    expect((await parsed()).map((heard) => heard.notification?.kind)).toEqual(["stream", "stream"]);

    await writer.query("UPDATE conversations SET user_id = $2 WHERE id = $1", [conversationId, otherUserId]);
    expect((await parsed()).map(({ channel, notification }) => ({ channel, notification }))).toEqual([
      { channel: userChannel(userId), notification: { kind: "conversation", op: "DELETE", conversationId } },
      { channel: userChannel(otherUserId), notification: { kind: "conversation", op: "UPDATE", conversationId } },
    ]);
    await writer.query("UPDATE conversations SET user_id = $2 WHERE id = $1", [conversationId, userId]);
    await parsed();
    await writer.query("DELETE FROM conversations WHERE id = $1", [conversationId]);
    expect(await one()).toEqual({ kind: "conversation", op: "DELETE", conversationId });
    // The tombstone a catch-up reads when this wake-up was missed.
    const tombstone = await writer.query("SELECT user_id FROM deleted_conversations WHERE id = $1", [conversationId]);
    expect(tombstone.rows).toEqual([{ user_id: userId }]);
  });

  it("should parse 'turn' from a turn's start, a cancel request and the turn's end", async () => {
    const conversationId = await insertConversation(writer, userId);
    const userMessage = await insertMessage(writer, { conversationId, userId, role: "user", content: "go", seq: 1 });
    await parsed();
    const turnId = await insertTurn(writer, { userId, conversationId, userMessageId: userMessage });
    // Its start is announced (turnUpdated follows every status a turn takes, RUNNING first).
    expect(await one()).toEqual({ kind: "turn", turnId, conversationId, status: "RUNNING", cancelRequested: false });
    await writer.query("UPDATE turns SET cancel_requested_at = now() WHERE id = $1", [turnId]);
    expect(await one()).toEqual({ kind: "turn", turnId, conversationId, status: "RUNNING", cancelRequested: true });
    await writer.query("UPDATE turns SET status = 'CANCELLED', finished_at = now() WHERE id = $1", [turnId]);
    expect(await one()).toEqual({ kind: "turn", turnId, conversationId, status: "CANCELLED", cancelRequested: true });
    const second = await insertMessage(writer, { conversationId, userId, role: "user", content: "again", seq: 2 });
    await parsed();
    const next = await insertTurn(writer, { userId, conversationId, userMessageId: second });
    expect(await one()).toEqual({ kind: "turn", turnId: next, conversationId, status: "RUNNING", cancelRequested: false });
    await writer.query("UPDATE turns SET status = 'COMPLETED' WHERE id = $1", [next]);
    expect(await one()).toEqual({ kind: "turn", turnId: next, conversationId, status: "COMPLETED", cancelRequested: false });
    // A decision on one of its held calls is announced too, with the status unchanged; other updates are not.
    await writer.query("UPDATE turns SET status = 'REQUIRES_ACTION' WHERE id = $1", [next]);
    expect(await one()).toMatchObject({ turnId: next, status: "REQUIRES_ACTION" });
    await writer.query("UPDATE turns SET last_decision_at = now() WHERE id = $1", [next]);
    expect(await one()).toMatchObject({ turnId: next, status: "REQUIRES_ACTION" });
    await writer.query("UPDATE turns SET input_tokens = 7 WHERE id = $1", [next]);
    expect(await parsed()).toEqual([]);
  });

  it("should keep every payload a trigger builds far below Postgres' 8,000-byte cap, whatever the row holds", async () => {
    const conversationId = await insertConversation(writer, userId);
    await parsed();
    const big = "💪".repeat(100_000);
    const answer = await insertMessage(writer, { conversationId, userId, role: "assistant", content: big, seq: 1, status: "STREAMING" });
    await writer.query("UPDATE messages SET status = 'COMPLETE' WHERE id = $1", [answer]);
    await writer.query("INSERT INTO tasks (user_id, title, description) VALUES ($1, $2, $3)", [userId, "t".repeat(200), "d".repeat(1000)]);
    const heard = await parsed();
    expect(heard.map((entry) => entry.notification?.kind)).toEqual(["stream", "message", "task"]);
    expect(heard[0]!.notification).toMatchObject({ length: 100_000 });
    for (const entry of heard) expect(entry.bytes).toBeLessThan(200);
    expect(200).toBeLessThan(MAX_PAYLOAD_BYTES);
    // Nothing any trigger sent was dropped as malformed.
    expect(lines.filter((line) => line.includes("malformed"))).toEqual([]);
  });
});

describe("the notification parser on payloads no trigger builds", () => {
  const task = { k: "task", op: "INSERT", i: randomUUID() };
  const message = { k: "message", i: randomUUID(), c: randomUUID(), s: 3, st: "COMPLETE" };
  const stream = { k: "stream", i: randomUUID(), c: randomUUID(), s: 3, o: 12 };
  const turn = { k: "turn", i: randomUUID(), c: randomUUID(), st: "RUNNING", x: false };
  const conversation = { k: "conversation", op: "UPDATE", i: randomUUID() };
  const malformed: [string, string, string][] = [
    ["not JSON", "{k: task}", "not JSON"],
    ["empty", "", "not JSON"],
    ["null", "null", "not a JSON object"],
    ["an array", JSON.stringify([task]), "not a JSON object"],
    ["a number", "42", "not a JSON object"],
    ["a string", JSON.stringify("task"), "not a JSON object"],
    ["no kind", JSON.stringify({ i: task.i }), "k is not a string"],
    ["a numeric kind", JSON.stringify({ ...task, k: 1 }), "k is not a string"],
    ["a task id that is not a uuid", JSON.stringify({ ...task, i: "not-a-uuid" }), "task: i is not a uuid"],
    ["a task id that is a number", JSON.stringify({ ...task, i: 7 }), "task: i is not a uuid"],
    ["an unknown task op", JSON.stringify({ ...task, op: "TRUNCATE" }), "task: op is not one of INSERT, UPDATE, DELETE"],
    ["a task without op", JSON.stringify({ k: "task", i: task.i }), "task: op is not one of INSERT, UPDATE, DELETE"],
    ["a message without conversation", JSON.stringify({ ...message, c: undefined }), "message: c is not a uuid"],
    ["a negative seq", JSON.stringify({ ...message, s: -1 }), "message: s is not a non-negative integer"],
    ["a fractional seq", JSON.stringify({ ...message, s: 1.5 }), "message: s is not a non-negative integer"],
    ["a seq as a string", JSON.stringify({ ...message, s: "3" }), "message: s is not a non-negative integer"],
    ["a seq beyond 2^53", '{"k":"message","i":"' + message.i + '","c":"' + message.c + '","s":1e300}', "message: s is not a non-negative integer"],
    ["an unknown message status", JSON.stringify({ ...message, st: "DONE" }), "message: st is not one of STREAMING, COMPLETE, CANCELLED, FAILED"],
    ["a null message status", JSON.stringify({ ...message, st: null }), "message: st is not one of STREAMING, COMPLETE, CANCELLED, FAILED"],
    ["a stream without length", JSON.stringify({ ...stream, o: undefined }), "stream: o is not a non-negative integer"],
    ["a conversation id that is not a uuid", JSON.stringify({ ...conversation, i: "c1" }), "conversation: i is not a uuid"],
    ["a conversation without op", JSON.stringify({ ...conversation, op: undefined }), "conversation: op is not one of INSERT, UPDATE, DELETE"],
    ["a turn whose x is a string", JSON.stringify({ ...turn, x: "true" }), "turn: x is not a boolean"],
    [
      "a turn with an unknown status",
      JSON.stringify({ ...turn, st: "PAUSED" }),
      "turn: st is not one of RUNNING, REQUIRES_ACTION, COMPLETED, CANCELLED, FAILED",
    ],
  ];

  it.each(malformed)("should drop %s, with one warning that gives the reason and not the payload", (_name, payload, reason) => {
    const { logger, lines } = capturingLogger();
    expect(parseNotification(payload, logger)).toBeUndefined();
    expect(decodeNotification(payload)).toEqual({ malformed: reason });
    const entries = lines.map((line) => JSON.parse(line) as Record<string, unknown>);
    expect(entries).toEqual([expect.objectContaining({ level: 40, msg: "dropped a malformed realtime notification", reason })]);
    expect(entries[0]!.bytes).toBe(Buffer.byteLength(payload, "utf8"));
    if (payload.length > 8) expect(lines[0]).not.toContain(payload);
  });

  it("should drop a well-formed notification of a kind it does not know at debug, not warn, including inherited property names", () => {
    for (const kind of ["reminder", "constructor", "toString", "__proto__", "hasOwnProperty"]) {
      const { logger, lines } = capturingLogger();
      const payload = JSON.stringify({ k: kind, i: randomUUID() });
      expect(parseNotification(payload, logger)).toBeUndefined();
      expect(decodeNotification(payload)).toEqual({ unknownKind: kind });
      expect(lines.map((line) => (JSON.parse(line) as { level: number }).level)).toEqual([20]);
    }
  });

  it("should read every kind with fields it does not know, and a message without the status older triggers left out", () => {
    const { logger, lines } = capturingLogger();
    expect(parseNotification(JSON.stringify({ ...task, extra: { nested: true } }), logger)).toEqual({ kind: "task", op: "INSERT", taskId: task.i });
    expect(parseNotification(JSON.stringify({ ...message, st: undefined }), logger)).toEqual({
      kind: "message",
      messageId: message.i,
      conversationId: message.c,
      seq: 3,
      status: undefined,
    });
    expect(parseNotification(JSON.stringify(stream), logger)).toEqual({
      kind: "stream",
      messageId: stream.i,
      conversationId: stream.c,
      seq: 3,
      length: 12,
    });
    expect(parseNotification(JSON.stringify(turn), logger)).toEqual({
      kind: "turn",
      turnId: turn.i,
      conversationId: turn.c,
      status: "RUNNING",
      cancelRequested: false,
    });
    expect(parseNotification(JSON.stringify(conversation), logger)).toEqual({ kind: "conversation", op: "UPDATE", conversationId: conversation.i });
    expect(lines).toEqual([]);
  });

  it("should never throw, and give either nothing or a complete notification, for any input", () => {
    const { logger } = capturingLogger();
    const kinds = fc.constantFrom("message", "stream", "task", "turn", "conversation", "other");
    const field = fc.oneof(
      fc.uuid(),
      fc.string(),
      fc.integer(),
      fc.double(),
      fc.boolean(),
      fc.constant(null),
      fc.constantFrom("INSERT", "COMPLETE", "RUNNING"),
    );
    const nearValid = fc.record({ k: kinds, i: field, c: field, s: field, o: field, op: field, st: field, x: field }, { requiredKeys: ["k"] });
    const payloads = fc.oneof(
      fc.string(),
      fc.json(),
      nearValid.map((value) => JSON.stringify(value)),
    );
    fc.assert(
      fc.property(payloads, (payload) => {
        const notification = parseNotification(payload, logger);
        if (notification !== undefined) expect(complete(notification)).toBe(true);
      }),
      { numRuns: 3000 },
    );
  });
});

describe("a malformed notification on a user's channel", () => {
  let server: LiveServer;
  let admin: pg.Client;

  beforeAll(async () => {
    server = await startLiveServer();
    admin = await adminClient(databaseUrl());
  });
  afterAll(async () => {
    await server.close();
    await admin.end();
  });

  it("should be dropped without stalling the user's taskChanged feed: the next change still arrives", async () => {
    const user = await newUser(server);
    const sub = await live(server, server.connect(user.token), TASK_CHANGED);
    // A task hint whose id is no uuid would fail the feed's re-read, and be retried forever.
    await admin.query("SELECT pg_notify($1, $2)", [userChannel(user.id), JSON.stringify({ k: "task", op: "INSERT", i: "not-a-uuid" })]);
    await admin.query("SELECT pg_notify($1, $2)", [userChannel(user.id), JSON.stringify({ k: "message", i: randomUUID(), c: "x", s: 1 })]);
    const task = (await user.gql<{ addTask: TaskView }>(ADD_TASK, { title: "after the bad hint" })).data!.addTask;
    expect(await nextTaskChange(sub, 10_000)).toEqual({ kind: "CREATED", taskId: task.id, task });
    sub.dispose();
  });

  it("should be parsed and logged once by the LISTEN connection, however many handlers its channel has", async () => {
    const { logger, lines } = capturingLogger();
    const listener = new PgListener({ connectionString: databaseUrl(), logger, heartbeatIntervalMs: 500, heartbeatTimeoutMs: 1000 });
    try {
      await listener.start();
      const channel = userChannel(newUserId("protocol-listener"));
      const heard: Notification[][] = [[], [], []];
      for (const into of heard) await listener.listen(channel, (notification) => into.push(notification));
      const taskId = randomUUID();
      await admin.query("SELECT pg_notify($1, $2)", [channel, JSON.stringify({ k: "task", op: "DELETE", i: "x" })]);
      await admin.query("SELECT pg_notify($1, $2)", [channel, JSON.stringify({ k: "task", op: "DELETE", i: taskId })]);
      await vi.waitFor(() => expect(heard.every((into) => into.length > 0)).toBe(true), { timeout: 10_000, interval: 10 });
      for (const into of heard) expect(into).toEqual([{ kind: "task", op: "DELETE", taskId }]);
      expect(lines.filter((line) => line.includes("dropped a malformed realtime notification"))).toHaveLength(1);
    } finally {
      await listener.close();
    }
  });
});

/** Every field of its kind present and of its type: what a consumer may rely on without checking. */
function complete(notification: Notification): boolean {
  const uuid = (value: unknown) => typeof value === "string" && /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i.test(value);
  const count = (value: unknown) => Number.isSafeInteger(value) && (value as number) >= 0;
  switch (notification.kind) {
    case "message":
      return uuid(notification.messageId) && uuid(notification.conversationId) && count(notification.seq) && Object.keys(notification).length === 5;
    case "stream":
      return uuid(notification.messageId) && uuid(notification.conversationId) && count(notification.seq) && count(notification.length);
    case "task":
      return uuid(notification.taskId) && ["INSERT", "UPDATE", "DELETE"].includes(notification.op);
    case "turn":
      return uuid(notification.turnId) && uuid(notification.conversationId) && typeof notification.cancelRequested === "boolean";
    case "conversation":
      return uuid(notification.conversationId) && ["INSERT", "UPDATE", "DELETE"].includes(notification.op) && Object.keys(notification).length === 3;
  }
}

async function insertConversation(client: pg.Client, userId: string): Promise<string> {
  const { rows } = await client.query<{ id: string }>("INSERT INTO conversations (user_id) VALUES ($1) RETURNING id", [userId]);
  return rows[0]!.id;
}

async function insertMessage(
  client: pg.Client,
  row: { conversationId: string; userId: string; role: string; content: string; seq: number; status?: string },
): Promise<string> {
  const { rows } = await client.query<{ id: string }>(
    `INSERT INTO messages (conversation_id, user_id, role, content, seq, status)
     VALUES ($1, $2, $3::message_role, $4, $5, $6::message_status) RETURNING id`,
    [row.conversationId, row.userId, row.role, row.content, row.seq, row.status ?? "COMPLETE"],
  );
  return rows[0]!.id;
}
