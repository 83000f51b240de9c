import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { toGlobalId } from "../../src/lib/ids.js";
import { cohereAssistant } from "../helpers/chat.js";
import { databaseUrl } from "../helpers/db.js";
import { startFakeCohere, textReply, toolCallReply, type FakeCohere } from "../helpers/fake-cohere.js";
import { newUser } from "../helpers/server.js";
import {
  ADD_TASK,
  adminClient,
  appendVia,
  COMPLETE_TASK,
  DELETE_TASK,
  live,
  MESSAGE_ADDED,
  messagesUntil,
  newConversation,
  nextMessage,
  nextTaskChange,
  range,
  startLiveServer,
  TASK_CHANGED,
  UPDATE_TASK,
  within,
  type LiveServer,
  type MessageView,
  type TaskView,
} from "./support.js";

describe("subscriptions over graphql-ws", () => {
  let server: LiveServer;

  beforeAll(async () => {
    server = await startLiveServer();
  });
  afterAll(async () => {
    await server.close();
  });

  it("should push a task created over HTTP to a taskChanged subscriber", async () => {
    const user = await newUser(server);
    const client = server.connect(user.token);
    const sub = await live(server, client, `subscription { taskChanged { kind taskId task { id title completed } } }`);
    const added = await user.gql(`mutation { addTask(input: { title: "Pushed" }) { id } }`);
    const event = await sub.next();
    expect(event.errors).toBeUndefined();
    expect(event.data?.taskChanged).toEqual({
      kind: "CREATED",
      taskId: added.data?.addTask.id,
      task: { id: added.data?.addTask.id, title: "Pushed", completed: false },
    });
    sub.dispose();
  });

  it("should push UPDATED for updateTask and completeTask, and DELETED with the task's last state", async () => {
    const user = await newUser(server);
    const sub = await live(server, server.connect(user.token), TASK_CHANGED);

    const added = (await user.gql<{ addTask: TaskView }>(ADD_TASK, { title: "Draft", description: "first" })).data!.addTask;
    expect(await nextTaskChange(sub)).toEqual({ kind: "CREATED", taskId: added.id, task: added });

    const updated = await user.gql<{ updateTask: TaskView }>(UPDATE_TASK, {
      input: { id: added.id, title: "Final", description: "second" },
    });
    expect(updated.errors).toBeUndefined();
    expect(await nextTaskChange(sub)).toEqual({ kind: "UPDATED", taskId: added.id, task: updated.data!.updateTask });

    const completed = await user.gql<{ completeTask: TaskView }>(COMPLETE_TASK, { id: added.id });
    expect(completed.errors).toBeUndefined();
    const completion = await nextTaskChange(sub);
    expect(completion).toEqual({ kind: "UPDATED", taskId: added.id, task: completed.data!.completeTask });
    expect(completion.task).toMatchObject({ title: "Final", description: "second", completed: true });

    const deleted = await user.gql<{ deleteTask: TaskView }>(DELETE_TASK, { id: added.id });
    expect(deleted.errors).toBeUndefined();
    const deletion = await nextTaskChange(sub);
    expect(deletion).toEqual({ kind: "DELETED", taskId: added.id, task: deleted.data!.deleteTask });
    expect(deletion.task).toEqual({ ...completed.data!.completeTask });

    // Nothing else was queued in between: the next event is a new change.
    const other = (await user.gql<{ addTask: TaskView }>(ADD_TASK, { title: "Sentinel" })).data!.addTask;
    expect(await nextTaskChange(sub)).toMatchObject({ kind: "CREATED", taskId: other.id });
    expect(sub.pending()).toEqual([]);
    sub.dispose();
  });

  it("should push messages appended through the domain to subscribers of that conversation and of all conversations", async () => {
    const user = await newUser(server);
    const first = await newConversation(server.db, user.id);
    const second = await newConversation(server.db, user.id);
    const client = server.connect(user.token);
    const scoped = await live(server, client, MESSAGE_ADDED, { conversationId: first.globalId });
    const everything = await live(server, client, MESSAGE_ADDED, {});

    const rows = await appendVia(server.db, user.id, first.id, ["hello", "world"]);
    await appendVia(server.db, user.id, second.id, ["elsewhere"]);
    await appendVia(server.db, user.id, first.id, ["again"]);

    const expected = (conversation: { globalId: string }, seq: number, content: string) => ({
      seq,
      role: "USER",
      content,
      toolCallId: null,
      conversation: { id: conversation.globalId },
    });
    const scopedMessages = await messagesUntil(scoped, 3);
    expect(scopedMessages).toEqual([
      { id: toGlobalId("Message", rows[0]!.id), ...expected(first, 1, "hello") },
      { id: toGlobalId("Message", rows[1]!.id), ...expected(first, 2, "world") },
      expect.objectContaining(expected(first, 3, "again")),
    ]);

    const all: MessageView[] = [];
    for (let i = 0; i < 4; i += 1) all.push(await nextMessage(everything));
    const by = (conversation: { globalId: string }) => all.filter((m) => m.conversation.id === conversation.globalId).map((m) => [m.seq, m.content]);
    expect(by(first)).toEqual([
      [1, "hello"],
      [2, "world"],
      [3, "again"],
    ]);
    expect(by(second)).toEqual([[1, "elsewhere"]]);
    expect(scoped.pending()).toEqual([]);
    scoped.dispose();
    everything.dispose();
  });

  it("should push to an all-conversations subscriber the messages of a conversation created after it subscribed", async () => {
    const user = await newUser(server);
    const sub = await live(server, server.connect(user.token), MESSAGE_ADDED, {});
    const conversation = await newConversation(server.db, user.id, "Started later");
    await appendVia(server.db, user.id, conversation.id, ["first of the new one", "second"]);
    expect((await messagesUntil(sub, 2)).map((m) => [m.conversation.id, m.seq, m.content])).toEqual([
      [conversation.globalId, 1, "first of the new one"],
      [conversation.globalId, 2, "second"],
    ]);
    sub.dispose();
  });

  it("should never push one user's task changes or messages to another user's subscribers", async () => {
    const alice = await newUser(server, "alice");
    const bob = await newUser(server, "bob");
    const aliceConversation = await newConversation(server.db, alice.id);
    const bobConversation = await newConversation(server.db, bob.id);
    const aliceClient = server.connect(alice.token);
    const bobClient = server.connect(bob.token);
    const aliceTasks = await live(server, aliceClient, TASK_CHANGED);
    const aliceMessages = await live(server, aliceClient, MESSAGE_ADDED, {});
    const bobTasks = await live(server, bobClient, TASK_CHANGED);
    const bobMessages = await live(server, bobClient, MESSAGE_ADDED, {});

    // Each change is awaited before the next: two commits whose wake-ups arrive together are re-read
    // once, as one event with the latest state (more likely with REALTIME_TRANSPORT=nats, whose relay
    // publishes what committed since its last read in one batch).
    const aliceTask = (await alice.gql<{ addTask: TaskView }>(ADD_TASK, { title: "Alice's secret" })).data!.addTask;
    expect(await nextTaskChange(aliceTasks)).toMatchObject({ kind: "CREATED", taskId: aliceTask.id });
    await alice.gql(COMPLETE_TASK, { id: aliceTask.id });
    expect(await nextTaskChange(aliceTasks)).toMatchObject({ kind: "UPDATED", taskId: aliceTask.id });
    await appendVia(server.db, alice.id, aliceConversation.id, ["for alice only"]);
    // Alice's subscribers got all of it, so it has been fanned out.
    expect(await nextMessage(aliceMessages)).toMatchObject({ content: "for alice only" });

    const bobTask = (await bob.gql<{ addTask: TaskView }>(ADD_TASK, { title: "Bob's own" })).data!.addTask;
    await appendVia(server.db, bob.id, bobConversation.id, ["for bob"]);
    expect(await nextTaskChange(bobTasks)).toEqual({ kind: "CREATED", taskId: bobTask.id, task: bobTask });
    expect(await nextMessage(bobMessages)).toMatchObject({ seq: 1, content: "for bob", conversation: { id: bobConversation.globalId } });
    expect(bobTasks.pending()).toEqual([]);
    expect(bobMessages.pending()).toEqual([]);

    // And the other way round.
    await alice.gql(DELETE_TASK, { id: aliceTask.id });
    await bob.gql(DELETE_TASK, { id: bobTask.id });
    expect(await nextTaskChange(aliceTasks)).toMatchObject({ kind: "DELETED", taskId: aliceTask.id });
    expect(await nextTaskChange(bobTasks)).toMatchObject({ kind: "DELETED", taskId: bobTask.id });
    for (const sub of [aliceTasks, aliceMessages, bobTasks, bobMessages]) sub.dispose();
  });

  it("should push task inserts, updates and deletes made by raw SQL", async () => {
    const user = await newUser(server);
    const sub = await live(server, server.connect(user.token), TASK_CHANGED);

    const [inserted] = await server.db.$queryRawUnsafe<{ id: string }[]>(
      `INSERT INTO tasks (user_id, title, description) VALUES ($1, 'From SQL', 'raw') RETURNING id`,
      user.id,
    );
    const taskId = toGlobalId("Task", inserted!.id);
    expect(await nextTaskChange(sub)).toMatchObject({
      kind: "CREATED",
      taskId,
      task: { id: taskId, title: "From SQL", description: "raw", completed: false },
    });

    const updated = await server.db.$executeRawUnsafe(
      `UPDATE tasks SET title = 'Renamed in SQL', completed = true WHERE id = $1::uuid`,
      inserted!.id,
    );
    expect(updated).toBe(1);
    const update = await nextTaskChange(sub);
    expect(update).toMatchObject({ kind: "UPDATED", taskId, task: { title: "Renamed in SQL", completed: true } });

    expect(await server.db.$executeRawUnsafe(`DELETE FROM tasks WHERE id = $1::uuid`, inserted!.id)).toBe(1);
    expect(await nextTaskChange(sub)).toEqual({ kind: "DELETED", taskId, task: update.task });
    sub.dispose();
  });

  it("should tell the old owner, as DELETED, and the new owner, as UPDATED, about a task moved between users by raw SQL", async () => {
    const [from, to] = [await newUser(server), await newUser(server)];
    const task = (await from.gql<{ addTask: TaskView }>(ADD_TASK, { title: "Handed over" })).data!.addTask;
    const fromSub = await live(server, server.connect(from.token), TASK_CHANGED);
    const toSub = await live(server, server.connect(to.token), TASK_CHANGED);
    const rawId = (await server.db.task.findFirstOrThrow({ where: { userId: from.id }, select: { id: true } })).id;

    expect(await server.db.$executeRawUnsafe(`UPDATE tasks SET user_id = $1 WHERE id = $2::uuid`, to.id, rawId)).toBe(1);

    expect(await nextTaskChange(fromSub)).toMatchObject({ kind: "DELETED", taskId: task.id, task: { title: "Handed over" } });
    expect(await nextTaskChange(toSub)).toMatchObject({ kind: "UPDATED", taskId: task.id, task: { title: "Handed over" } });
    const tombstone = await server.db.deletedTask.findUnique({ where: { id: rawId } });
    expect(tombstone?.userId).toBe(from.id);
    fromSub.dispose();
    toSub.dispose();
  });

  it("should push both of two updates whose transactions started in the same millisecond", async () => {
    const user = await newUser(server);
    const task = (await user.gql<{ addTask: TaskView }>(ADD_TASK, { title: "Contended" })).data!.addTask;
    const sub = await live(server, server.connect(user.token), TASK_CHANGED);
    const [first, second] = [await adminClient(databaseUrl()), await adminClient(databaseUrl())];
    try {
      // Two writers whose now() (and so updated_at, at millisecond precision) is the same.
      let attempts = 0;
      for (;;) {
        attempts += 1;
        await Promise.all([first.query("BEGIN"), second.query("BEGIN")]);
        const [a, b] = await Promise.all([first, second].map((client) => client.query<{ at: string }>("SELECT now()::timestamptz(3)::text AS at")));
        if (a!.rows[0]!.at === b!.rows[0]!.at) break;
        await Promise.all([first.query("ROLLBACK"), second.query("ROLLBACK")]);
        if (attempts === 200) throw new Error("could not start two transactions in the same millisecond");
      }
      const rawId = (await server.db.task.findFirstOrThrow({ where: { userId: user.id }, select: { id: true } })).id;
      await first.query("UPDATE tasks SET title = 'First writer' WHERE id = $1", [rawId]);
      await first.query("COMMIT");
      const one = await nextTaskChange(sub);
      expect(one).toMatchObject({ kind: "UPDATED", taskId: task.id, task: { title: "First writer" } });

      await second.query("UPDATE tasks SET title = 'Second writer', completed = true WHERE id = $1", [rawId]);
      await second.query("COMMIT");
      const two = await nextTaskChange(sub);
      expect(two).toMatchObject({ kind: "UPDATED", taskId: task.id, task: { title: "Second writer", completed: true } });
      expect(two.task!.updatedAt).toBe(one.task!.updatedAt);
    } finally {
      await first.end();
      await second.end();
    }
    sub.dispose();
  });

  it("should push a message inserted by raw SQL that bumps the conversation's last_seq in the same statement", async () => {
    const user = await newUser(server);
    const conversation = await newConversation(server.db, user.id);
    await appendVia(server.db, user.id, conversation.id, ["one", "two"]);
    const sub = await live(server, server.connect(user.token), MESSAGE_ADDED, { conversationId: conversation.globalId });

    const inserted = await server.db.$executeRawUnsafe(
      `WITH bumped AS (
         UPDATE conversations SET last_seq = last_seq + 1, updated_at = now() WHERE id = $1::uuid RETURNING user_id, last_seq
       )
       INSERT INTO messages (conversation_id, user_id, role, content, seq)
       SELECT $1::uuid, user_id, 'assistant'::message_role, 'from SQL', last_seq FROM bumped`,
      conversation.id,
    );
    expect(inserted).toBe(1);
    expect(await nextMessage(sub)).toMatchObject({ seq: 3, role: "ASSISTANT", content: "from SQL", conversation: { id: conversation.globalId } });
    sub.dispose();
  });

  it("should replay after afterSeq and then go live without a gap or a duplicate while messages keep being inserted", async () => {
    const user = await newUser(server);
    const conversation = await newConversation(server.db, user.id);
    await appendVia(
      server.db,
      user.id,
      conversation.id,
      range(1, 50).map((n) => `m${n}`),
    );
    const client = server.connect(user.token);

    // The subscription starts while a writer keeps committing, one message per transaction.
    const more = 40;
    const before = server.app.realtime.establishedCount;
    const writer = (async () => {
      for (let n = 51; n <= 50 + more; n += 1) await appendVia(server.db, user.id, conversation.id, [`m${n}`]);
    })();
    const sub = client.subscribe(MESSAGE_ADDED, { conversationId: conversation.globalId, afterSeq: 10 });
    await writer;
    await vi.waitFor(() => expect(server.app.realtime.establishedCount, "established subscriptions").toBeGreaterThan(before), {
      timeout: 10_000,
      interval: 10,
    });
    const last = 50 + more;
    const received = await messagesUntil(sub, last);
    // A sentinel after the last: anything repeated would come before it.
    await appendVia(server.db, user.id, conversation.id, ["sentinel"]);
    received.push(...(await messagesUntil(sub, last + 1)));

    expect(received.map((m) => m.seq)).toEqual(range(11, last + 1));
    expect(received.map((m) => m.content)).toEqual([...range(11, last).map((n) => `m${n}`), "sentinel"]);
    sub.dispose();
  });

  it("should replay a whole conversation with afterSeq 0", async () => {
    const user = await newUser(server);
    const conversation = await newConversation(server.db, user.id);
    await appendVia(server.db, user.id, conversation.id, ["a", "b", "c"]);
    const sub = await live(server, server.connect(user.token), MESSAGE_ADDED, { conversationId: conversation.globalId, afterSeq: 0 });
    expect((await messagesUntil(sub, 3)).map((m) => [m.seq, m.content])).toEqual([
      [1, "a"],
      [2, "b"],
      [3, "c"],
    ]);
    await appendVia(server.db, user.id, conversation.id, ["d"]);
    expect(await nextMessage(sub)).toMatchObject({ seq: 4, content: "d" });
    sub.dispose();
  });

  it("should start a subscription without afterSeq at the conversation's newest message", async () => {
    const user = await newUser(server);
    const conversation = await newConversation(server.db, user.id);
    await appendVia(server.db, user.id, conversation.id, ["old 1", "old 2"]);
    const sub = await live(server, server.connect(user.token), MESSAGE_ADDED, { conversationId: conversation.globalId });
    await appendVia(server.db, user.id, conversation.id, ["new"]);
    expect(await nextMessage(sub)).toMatchObject({ seq: 3, content: "new" });
    expect(sub.pending()).toEqual([]);
    sub.dispose();
  });
});

describe("a chat turn over subscriptions", () => {
  let fake: FakeCohere;
  let server: LiveServer;

  beforeAll(async () => {
    fake = await startFakeCohere();
    server = await startLiveServer({ assistant: cohereAssistant(fake) });
  });
  afterAll(async () => {
    await server.close();
    await fake.close();
  });

  it("should push the user, assistant, tool and final messages of a sendMessage turn in seq order, and the task its tool added", async () => {
    const user = await newUser(server);
    const created = await user.gql<{ createConversation: { id: string } }>(`mutation { createConversation(input: { title: "Chat" }) { id } }`);
    const conversationId = created.data!.createConversation.id;
    const client = server.connect(user.token);
    const messages = await live(server, client, MESSAGE_ADDED, { conversationId });
    const tasks = await live(server, client, TASK_CHANGED);

    fake.enqueue(toolCallReply([{ id: "call_milk", name: "add_task", args: { title: "Buy milk" } }], "I will add it."), textReply("Added Buy milk."));
    const response = await user.gql(
      /* GraphQL */ `
        mutation Send($input: SendMessageInput!) {
          sendMessage(input: $input) {
            messages {
              id
              seq
              role
              content
              toolCallId
              conversation {
                id
              }
            }
            toolCalls {
              id
              result
            }
          }
        }
      `,
      { input: { conversationId, content: "add buy milk" } },
    );
    expect(response.errors).toBeUndefined();
    const persisted = response.data!.sendMessage.messages as MessageView[];
    expect(persisted.map((m) => [m.role, m.seq])).toEqual([
      ["USER", 1],
      ["ASSISTANT", 2],
      ["TOOL", 3],
      ["ASSISTANT", 4],
    ]);

    const pushed = await messagesUntil(messages, 4);
    expect(pushed).toEqual(persisted);
    expect(pushed.map((m) => m.content)).toEqual(["add buy milk", "", expect.stringContaining("Buy milk"), "Added Buy milk."]);
    expect(pushed[2]!.toolCallId).toBe("call_milk");

    const taskId = response.data!.sendMessage.toolCalls[0].result.id as string;
    expect(await nextTaskChange(tasks)).toMatchObject({
      kind: "CREATED",
      taskId,
      task: { id: taskId, title: "Buy milk", completed: false },
    });
    expect(messages.pending()).toEqual([]);
    expect(tasks.pending()).toEqual([]);
    messages.dispose();
    tasks.dispose();
  });
});

describe("ending subscriptions", () => {
  let server: LiveServer;

  beforeAll(async () => {
    server = await startLiveServer();
  });
  afterAll(async () => {
    await server.close();
  });

  it("should release a user's subscribers and stop listening to their channel once their last subscription ends", async () => {
    const realtime = server.app.realtime;
    const listener = server.app.transport;
    const user = await newUser(server);
    const conversation = await newConversation(server.db, user.id);
    const client = server.connect(user.token);
    const tasks = await live(server, client, TASK_CHANGED);
    const messages = await live(server, client, MESSAGE_ADDED, { conversationId: conversation.globalId });
    expect(realtime.subscriberCount).toBe(2);
    expect(listener.topicCount).toBe(1);

    tasks.dispose();
    await vi.waitFor(() => expect(realtime.subscriberCount, "subscribers left").toBe(1), { timeout: 15_000, interval: 10 });
    expect(listener.topicCount).toBe(1);
    // The one left still works.
    await appendVia(server.db, user.id, conversation.id, ["still here"]);
    expect(await nextMessage(messages)).toMatchObject({ seq: 1, content: "still here" });

    messages.dispose();
    await vi.waitFor(
      () => {
        expect(realtime.subscriberCount, "subscribers left").toBe(0);
        expect(listener.topicCount, "topics left").toBe(0);
      },
      { timeout: 15_000, interval: 10 },
    );
  });

  it("should release the subscriptions of a socket that drops without completing them", async () => {
    const realtime = server.app.realtime;
    const user = await newUser(server);
    const client = server.connect(user.token);
    for (let i = 0; i < 3; i += 1) await live(server, client, TASK_CHANGED);
    expect(realtime.subscriberCount).toBe(3);
    expect(server.app.transport.topicCount).toBe(1);

    // Abruptly, as a lost network would: no complete messages.
    client.client.terminate();
    expect((await within(client.closed, 10_000, "close")).code).not.toBe(1000);
    await vi.waitFor(
      () => {
        expect(realtime.subscriberCount, "subscribers left").toBe(0);
        expect(server.app.transport.topicCount, "topics left").toBe(0);
      },
      { timeout: 15_000, interval: 10 },
    );

    // A new subscription of the same user starts from scratch and works.
    const fresh = server.connect(user.token);
    const again = await live(server, fresh, TASK_CHANGED);
    const task = (await user.gql<{ addTask: TaskView }>(ADD_TASK, { title: "After the drop" })).data!.addTask;
    expect(await nextTaskChange(again)).toEqual({ kind: "CREATED", taskId: task.id, task });
    again.dispose();
  });
});
