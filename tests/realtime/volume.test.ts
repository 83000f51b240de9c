import type pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Db } from "../../src/db/client.js";
import { toGlobalId } from "../../src/lib/ids.js";
import { databaseUrl, testDb } from "../helpers/db.js";
import { newUser, testAssistant } from "../helpers/server.js";
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
} from "./support.js";

/** Large amounts at once: a long replay, and a burst of commits in one transaction. */
describe("realtime volume", { timeout: 60_000 }, () => {
  let db: Db;
  let server: LiveServer;
  let admin: pg.Client;
  const statements: string[] = [];

  beforeAll(async () => {
    db = testDb({ onQuery: (sql) => statements.push(sql) });
    // No approval sweep: its timer (woken by other files' approvals in the shared database) would add statements to the count.
    server = await startLiveServer({ db, assistant: testAssistant({ approvalSweep: false }) });
    admin = await adminClient(databaseUrl());
  });
  afterAll(async () => {
    await server.close();
    await db.$disconnect();
    await admin.end();
  });

  it("should replay 25,000 messages after afterSeq completely and in order, then go live", async () => {
    const user = await newUser(server);
    const conversation = await newConversation(db, user.id);
    const count = 25_000;
    // One statement, keeping the invariant of src/domain/messages.ts: last_seq is bumped with the rows it hands out.
    await admin.query(
      `WITH bumped AS (UPDATE conversations SET last_seq = last_seq + $2 WHERE id = $1::uuid RETURNING user_id, last_seq)
       INSERT INTO messages (conversation_id, user_id, role, content, seq)
       SELECT $1::uuid, user_id, 'user', 'm' || g, last_seq - $2 + g FROM bumped, generate_series(1, $2) g`,
      [conversation.id, count],
    );
    const sub = await live(
      server,
      server.connect(user.token),
      `subscription ($id: ID!) { messageAdded(conversationId: $id, afterSeq: 0) { seq content } }`,
      {
        id: conversation.globalId,
      },
    );
    const seqs: number[] = [];
    let inOrder = true;
    while (seqs.length < count) {
      const message = await nextMessage(sub, 20_000);
      if (message.seq !== seqs.length + 1 || message.content !== `m${message.seq}`) inOrder = false;
      seqs.push(message.seq);
    }
    expect(inOrder).toBe(true);
    expect(seqs.at(-1)).toBe(count);
    await appendVia(db, user.id, conversation.id, ["live"]);
    expect(await nextMessage(sub)).toMatchObject({ seq: count + 1, content: "live" });
    expect(sub.pending()).toEqual([]);
    sub.dispose();
  });

  it("should deliver a burst of 500 task inserts in one transaction as 500 events, re-read in a handful of queries", async () => {
    const user = await newUser(server);
    const sub = await live(server, server.connect(user.token), TASK_CHANGED);
    statements.length = 0;
    const { rows } = await admin.query<{ id: string }>(
      `INSERT INTO tasks (user_id, title) SELECT $1, 'burst ' || g FROM generate_series(1, 500) g RETURNING id`,
      [user.id],
    );
    const events = [];
    for (let i = 0; i < rows.length; i += 1) events.push(await nextTaskChange(sub));
    expect(events.every((event) => event.kind === "CREATED")).toBe(true);
    expect(new Set(events.map((event) => event.taskId))).toEqual(new Set(rows.map((row) => toGlobalId("Task", row.id))));
    const reads = statements.filter((sql) => /from "public"\."tasks"/i.test(sql));
    expect(reads.length).toBeGreaterThanOrEqual(1);
    expect(reads.length).toBeLessThanOrEqual(5);
    expect(statements.length).toBeLessThanOrEqual(5);

    // Nothing more is queued: the next event is the next commit.
    await admin.query(`INSERT INTO tasks (user_id, title) VALUES ($1, 'after the burst')`, [user.id]);
    expect(await nextTaskChange(sub)).toMatchObject({ kind: "CREATED", task: { title: "after the burst" } });
    sub.dispose();
  });

  it("should read a message, and the conversation its selection asks for, once per event for all of a user's subscribers", async () => {
    const user = await newUser(server);
    const conversation = await newConversation(db, user.id);
    const client = server.connect(user.token);
    // `conversation { id }` is a relation: executing it loads the conversation.
    const subs = [];
    for (let i = 0; i < 20; i += 1) subs.push(await live(server, client, MESSAGE_ADDED, { conversationId: conversation.globalId }));
    statements.length = 0;
    await admin.query(
      `WITH bumped AS (UPDATE conversations SET last_seq = last_seq + 1 WHERE id = $1::uuid RETURNING user_id, last_seq)
       INSERT INTO messages (conversation_id, user_id, role, content, seq) SELECT $1::uuid, user_id, 'user', 'shared', last_seq FROM bumped`,
      [conversation.id],
    );
    for (const sub of subs) {
      expect(await nextMessage(sub)).toMatchObject({ seq: 1, content: "shared", conversation: { id: conversation.globalId } });
    }
    // One re-read of the message, one load of its conversation: every subscriber gets the same event object.
    expect(statements.length).toBeLessThanOrEqual(2);
    for (const sub of subs) sub.dispose();
  });
});
