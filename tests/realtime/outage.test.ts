import type pg from "pg";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { databaseUrl } from "../helpers/db.js";
import { toGlobalId } from "../../src/lib/ids.js";
import { newUser, onNatsTransport } from "../helpers/server.js";
import {
  ADD_TASK,
  adminClient,
  appendVia,
  COMPLETE_TASK,
  CONVERSATION_CHANGED,
  DELETE_TASK,
  killListener,
  listenerPidsBehind,
  live,
  MESSAGE_ADDED,
  messagesUntil,
  newConversation,
  nextEvent,
  nextConversationChange,
  nextMessage,
  nextTaskChange,
  promiseState,
  range,
  startLiveServer,
  TASK_CHANGED,
  UPDATE_TASK,
  within,
  type LiveServer,
  type ConversationChangeView,
  type TaskChangeView,
  type TaskView,
  insertTurn,
} from "./support.js";
import { startTcpGate, type TcpGate } from "../helpers/tcp-gate.js";

/**
 * The LISTEN connection goes through a gate: the test kills its backend with
 * pg_terminate_backend and keeps the gate shut while it commits, so those
 * commits certainly happen while the listener is down; opening the gate lets
 * the listener's reconnect (50–500 ms backoff) through.
 */
// The postgres transport's own LISTEN connection: under REALTIME_TRANSPORT=nats there is none (nats-*.test.ts cover its outages).
describe.skipIf(onNatsTransport())("a killed LISTEN connection", () => {
  let gate: TcpGate;
  let server: LiveServer;
  let admin: pg.Client;

  /** Kills the listener's backend and resolves once the listener knows; the gate stays shut. */
  async function takeListenerDown(): Promise<number[]> {
    const killed = await killListener(server, gate, admin);
    expect(server.app.transport.connected).toBe(false);
    return killed;
  }

  /** Lets the listener reconnect and resolves once it has (catch-up is queued by then). */
  async function bringListenerBack(): Promise<void> {
    expect(server.app.transport.connected).toBe(false);
    const reconnected = nextEvent(server.app.transport, "reconnected");
    gate.open();
    await reconnected;
  }

  beforeAll(async () => {
    gate = await startTcpGate(databaseUrl());
    server = await startLiveServer({ listenUrl: gate.url });
    admin = await adminClient(databaseUrl());
  });
  afterAll(async () => {
    gate.open();
    await server.close();
    await gate.close();
    await admin.end();
  });

  it("should keep subscriptions open while it is down and deliver what was committed meanwhile once it is back", async () => {
    const user = await newUser(server);
    const conversation = await newConversation(server.db, user.id);
    const client = server.connect(user.token);
    const messages = await live(server, client, MESSAGE_ADDED, { conversationId: conversation.globalId });
    const tasks = await live(server, client, TASK_CHANGED);

    // Before the outage: live delivery.
    await appendVia(server.db, user.id, conversation.id, ["before 1", "before 2"]);
    const kept = (await user.gql<{ addTask: TaskView }>(ADD_TASK, { title: "Kept", description: "v1" })).data!.addTask;
    const doomed = (await user.gql<{ addTask: TaskView }>(ADD_TASK, { title: "Doomed", description: "last words" })).data!.addTask;
    expect((await messagesUntil(messages, 2)).map((m) => m.seq)).toEqual([1, 2]);
    expect(await nextTaskChange(tasks)).toMatchObject({ kind: "CREATED", taskId: kept.id });
    expect(await nextTaskChange(tasks)).toMatchObject({ kind: "CREATED", taskId: doomed.id });

    const killed = await takeListenerDown();

    // Committed while the listener is down.
    await appendVia(server.db, user.id, conversation.id, ["during 3", "during 4"]);
    await appendVia(server.db, user.id, conversation.id, ["during 5"]);
    await user.gql(UPDATE_TASK, { input: { id: kept.id, title: "Kept, renamed", description: "v2" } });
    const keptFinal = (await user.gql<{ completeTask: TaskView }>(COMPLETE_TASK, { id: kept.id })).data!.completeTask;
    const doomedLast = (await user.gql<{ deleteTask: TaskView }>(DELETE_TASK, { id: doomed.id })).data!.deleteTask;
    const fresh = (await user.gql<{ addTask: TaskView }>(ADD_TASK, { title: "Fresh" })).data!.addTask;
    const freshFinal = (await user.gql<{ updateTask: TaskView }>(UPDATE_TASK, { input: { id: fresh.id, title: "Fresh, edited" } })).data!.updateTask;
    const fleeting = (await user.gql<{ addTask: TaskView }>(ADD_TASK, { title: "Fleeting" })).data!.addTask;
    const fleetingLast = (await user.gql<{ deleteTask: TaskView }>(DELETE_TASK, { id: fleeting.id })).data!.deleteTask;

    // Still down, and the subscriptions and the socket are still open, with nothing delivered.
    expect(server.app.transport.connected).toBe(false);
    expect(await promiseState(messages.ended)).toBe("pending");
    expect(await promiseState(tasks.ended)).toBe("pending");
    expect(await promiseState(client.closed)).toBe("pending");
    expect(messages.pending()).toEqual([]);
    expect(tasks.pending()).toEqual([]);

    await bringListenerBack();
    const pids = await listenerPidsBehind(admin, gate);
    expect(pids).toHaveLength(1);
    expect(killed).not.toContain(pids[0]);

    // Messages: by seq, no gap, no duplicate.
    expect((await messagesUntil(messages, 5)).map((m) => [m.seq, m.content])).toEqual([
      [3, "during 3"],
      [4, "during 4"],
      [5, "during 5"],
    ]);
    // Tasks: one event per task, with its latest state.
    const caughtUp = new Map<string, TaskChangeView>();
    for (let i = 0; i < 4; i += 1) {
      const event = await nextTaskChange(tasks);
      expect(caughtUp.has(event.taskId)).toBe(false);
      caughtUp.set(event.taskId, event);
    }
    expect(caughtUp.get(kept.id)).toEqual({ kind: "UPDATED", taskId: kept.id, task: keptFinal });
    expect(keptFinal).toMatchObject({ title: "Kept, renamed", description: "v2", completed: true });
    expect(caughtUp.get(doomed.id)).toEqual({ kind: "DELETED", taskId: doomed.id, task: doomedLast });
    expect(doomedLast).toMatchObject({ title: "Doomed", description: "last words" });
    expect(caughtUp.get(fresh.id)).toEqual({ kind: "CREATED", taskId: fresh.id, task: freshFinal });
    expect(caughtUp.get(fleeting.id)).toEqual({ kind: "DELETED", taskId: fleeting.id, task: fleetingLast });

    // And live again afterwards, with nothing repeated in between.
    await appendVia(server.db, user.id, conversation.id, ["after 6"]);
    const after = (await user.gql<{ addTask: TaskView }>(ADD_TASK, { title: "After" })).data!.addTask;
    expect(await nextMessage(messages)).toMatchObject({ seq: 6, content: "after 6" });
    expect(await nextTaskChange(tasks)).toEqual({ kind: "CREATED", taskId: after.id, task: after });
    expect(messages.pending()).toEqual([]);
    expect(tasks.pending()).toEqual([]);
    messages.dispose();
    tasks.dispose();
  });

  it("should catch up conversationChanged with one event per conversation, its latest state, and deletions from their tombstones", async () => {
    const user = await newUser(server);
    const sub = await live(server, server.connect(user.token), CONVERSATION_CHANGED);
    const kept = await newConversation(server.db, user.id, "Kept");
    const doomed = await newConversation(server.db, user.id, "Doomed");
    expect(await nextConversationChange(sub)).toMatchObject({ kind: "CREATED", conversationId: kept.globalId });
    expect(await nextConversationChange(sub)).toMatchObject({ kind: "CREATED", conversationId: doomed.globalId });

    await takeListenerDown();
    await admin.query("UPDATE conversations SET title = 'Kept, renamed' WHERE id = $1", [kept.id]);
    await appendVia(server.db, user.id, kept.id, ["new activity"]);
    await admin.query("DELETE FROM conversations WHERE id = $1", [doomed.id]);
    const fresh = await newConversation(server.db, user.id, "Fresh");
    await admin.query("UPDATE conversations SET title = 'Fresh, renamed' WHERE id = $1", [fresh.id]);
    const fleeting = await newConversation(server.db, user.id, "Fleeting");
    await admin.query("DELETE FROM conversations WHERE id = $1", [fleeting.id]);
    expect(sub.pending()).toEqual([]);
    await bringListenerBack();

    const caughtUp = new Map<string, ConversationChangeView>();
    for (let i = 0; i < 4; i += 1) {
      const event = await nextConversationChange(sub);
      expect(caughtUp.has(event.conversationId)).toBe(false);
      caughtUp.set(event.conversationId, event);
    }
    expect(caughtUp.get(kept.globalId)).toMatchObject({ kind: "UPDATED", conversation: { title: "Kept, renamed" } });
    expect(caughtUp.get(doomed.globalId)).toEqual({ kind: "DELETED", conversationId: doomed.globalId, conversation: null });
    expect(caughtUp.get(fresh.globalId)).toMatchObject({ kind: "CREATED", conversation: { title: "Fresh, renamed" } });
    expect(caughtUp.get(fleeting.globalId)).toEqual({ kind: "DELETED", conversationId: fleeting.globalId, conversation: null });

    // Live again, with nothing repeated in between.
    const after = await newConversation(server.db, user.id, "After");
    expect(await nextConversationChange(sub)).toMatchObject({ kind: "CREATED", conversationId: after.globalId });
    expect(sub.pending()).toEqual([]);
    sub.dispose();
  });

  it("should deliver to subscriptions that started while the listener was down", async () => {
    const user = await newUser(server);
    const conversation = await newConversation(server.db, user.id);
    await appendVia(server.db, user.id, conversation.id, ["old"]);
    await takeListenerDown();

    const client = server.connect(user.token);
    const replay = await live(server, client, MESSAGE_ADDED, { conversationId: conversation.globalId, afterSeq: 0 });
    const fromNow = await live(server, client, MESSAGE_ADDED, { conversationId: conversation.globalId });
    const tasks = await live(server, client, TASK_CHANGED);
    await appendVia(server.db, user.id, conversation.id, ["while down"]);
    const task = (await user.gql<{ addTask: TaskView }>(ADD_TASK, { title: "While down" })).data!.addTask;

    await bringListenerBack();
    expect((await messagesUntil(replay, 2)).map((m) => [m.seq, m.content])).toEqual([
      [1, "old"],
      [2, "while down"],
    ]);
    expect(await nextMessage(fromNow)).toMatchObject({ seq: 2, content: "while down" });
    expect(await nextTaskChange(tasks)).toEqual({ kind: "CREATED", taskId: task.id, task });

    await appendVia(server.db, user.id, conversation.id, ["live"]);
    expect(await nextMessage(replay)).toMatchObject({ seq: 3 });
    expect(await nextMessage(fromNow)).toMatchObject({ seq: 3 });
    for (const sub of [replay, fromNow, tasks]) {
      expect(sub.pending()).toEqual([]);
      sub.dispose();
    }
  });

  it("should not replay a deletion from before the subscription started when it catches up", async () => {
    const user = await newUser(server);
    const gone = (await user.gql<{ addTask: TaskView }>(ADD_TASK, { title: "Gone before" })).data!.addTask;
    await user.gql(DELETE_TASK, { id: gone.id });
    const tasks = await live(server, server.connect(user.token), TASK_CHANGED);

    await takeListenerDown();
    const during = (await user.gql<{ addTask: TaskView }>(ADD_TASK, { title: "During" })).data!.addTask;
    await bringListenerBack();

    expect(await nextTaskChange(tasks)).toEqual({ kind: "CREATED", taskId: during.id, task: during });
    const sentinel = (await user.gql<{ addTask: TaskView }>(ADD_TASK, { title: "Sentinel" })).data!.addTask;
    expect(await nextTaskChange(tasks)).toMatchObject({ kind: "CREATED", taskId: sentinel.id });
    tasks.dispose();
  });

  it("should catch up a taskChanged subscription that started while the user's previous one was ending", async () => {
    const user = await newUser(server);
    const realtime = server.app.realtime;
    const before = realtime.establishedCount;
    // A stream opens when it is first pulled, as graphql-ws and SSE do at once.
    const first = realtime.taskChanges(user.id);
    const firstPull = first.next();
    await vi.waitFor(() => expect(realtime.establishedCount, "established subscriptions").toBe(before + 1), { timeout: 15_000, interval: 10 });
    // The second starts (it reads the database time) while the first ends.
    const second = realtime.taskChanges(user.id);
    const secondPull = second.next();
    await first.return?.();
    expect((await firstPull).done).toBe(true);
    await vi.waitFor(() => expect(realtime.establishedCount, "established subscriptions").toBe(before + 2), { timeout: 15_000, interval: 10 });

    await takeListenerDown();
    const during = (await user.gql<{ addTask: TaskView }>(ADD_TASK, { title: "During the outage" })).data!.addTask;
    await bringListenerBack();

    const event = await within(secondPull, 10_000, "catch-up of the second subscription");
    expect(event.done).toBe(false);
    expect(event.value).toMatchObject({ kind: "CREATED", task: { title: "During the outage" } });
    expect(during.title).toBe("During the outage");
    await second.return?.();
  });

  it("should deliver to turnUpdated a turn that started and paused while it was down, and no turn that ended before", async () => {
    const user = await newUser(server);
    const conversation = await newConversation(server.db, user.id);
    const turnWith = async (content: string, status: string) => {
      const [message] = await appendVia(server.db, user.id, conversation.id, [content]);
      return insertTurn(admin, { userId: user.id, conversationId: conversation.id, userMessageId: message!.id, status });
    };
    await turnWith("long done", "COMPLETED");
    const client = server.connect(user.token);
    const before = server.app.turns.establishedCount;
    const turns = client.subscribe<{ turnUpdated: { id: string; status: string } }>(
      `subscription T($c: ID!) { turnUpdated(conversationId: $c) { id status } }`,
      { c: conversation.globalId },
    );
    await vi.waitFor(() => expect(server.app.turns.establishedCount, "turnUpdated listens").toBeGreaterThan(before), {
      timeout: 10_000,
      interval: 10,
    });

    await takeListenerDown();
    const paused = await turnWith("paused while down", "RUNNING");
    await admin.query("UPDATE turns SET status = 'REQUIRES_ACTION' WHERE id = $1", [paused]);
    await bringListenerBack();

    expect((await turns.next(10_000)).data?.turnUpdated).toEqual({ id: toGlobalId("Turn", paused), status: "REQUIRES_ACTION" });
    // Live again, and the turn that ended before the subscription is not news.
    await admin.query("UPDATE turns SET status = 'COMPLETED' WHERE id = $1", [paused]);
    expect((await turns.next(10_000)).data?.turnUpdated).toEqual({ id: toGlobalId("Turn", paused), status: "COMPLETED" });
    expect(turns.pending()).toEqual([]);
    turns.dispose();
  });

  it("should recover again after repeated kills", async () => {
    const user = await newUser(server);
    const conversation = await newConversation(server.db, user.id);
    const messages = await live(server, server.connect(user.token), MESSAGE_ADDED, { conversationId: conversation.globalId });
    for (const round of range(1, 3)) {
      await takeListenerDown();
      await appendVia(server.db, user.id, conversation.id, [`down ${round}`]);
      await bringListenerBack();
      await appendVia(server.db, user.id, conversation.id, [`up ${round}`]);
    }
    expect((await messagesUntil(messages, 6)).map((m) => m.content)).toEqual(["down 1", "up 1", "down 2", "up 2", "down 3", "up 3"]);
    messages.dispose();
  });
});
