import type pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { databaseUrl } from "../helpers/db.js";
import { newUser, onNatsTransport } from "../helpers/server.js";
import {
  ADD_TASK,
  adminClient,
  appendVia,
  DELETE_TASK,
  killListener,
  live,
  MESSAGE_ADDED,
  messagesUntil,
  newConversation,
  nextEvent,
  nextMessage,
  nextTaskChange,
  startLiveServer,
  TASK_CHANGED,
  UPDATE_TASK,
  type LiveServer,
  type TaskView,
} from "./support.js";
import { startTcpGate, type TcpGate } from "../helpers/tcp-gate.js";

/** Two instances of the API on one database, each with its own LISTEN connection (behind its own gate). */
describe("two server instances on one database", () => {
  const instances: { server: LiveServer; gate: TcpGate }[] = [];
  let admin: pg.Client;

  function instance(index: number): { server: LiveServer; gate: TcpGate } {
    const found = instances[index];
    if (!found) throw new Error(`no instance ${index}`);
    return found;
  }

  beforeAll(async () => {
    admin = await adminClient(databaseUrl());
    for (let i = 0; i < 2; i += 1) {
      const gate = await startTcpGate(databaseUrl());
      instances.push({ gate, server: await startLiveServer({ listenUrl: gate.url }) });
    }
  });
  afterAll(async () => {
    for (const { server, gate } of instances) {
      gate.open();
      await server.close();
      await gate.close();
    }
    await admin.end();
  });

  it("should deliver to a subscriber on one instance what is changed through the other", async () => {
    const { server: a } = instance(0);
    const { server: b } = instance(1);
    const user = await newUser(a);
    const conversation = await newConversation(a.db, user.id);
    const client = a.connect(user.token);
    const tasks = await live(a, client, TASK_CHANGED);
    const messages = await live(a, client, MESSAGE_ADDED, { conversationId: conversation.globalId });

    const onB = (query: string, variables: Record<string, unknown>) => b.request<Record<string, any>>(query, variables, user.token);
    const task = (await onB(ADD_TASK, { title: "Made on B" })).data!.addTask as TaskView;
    expect(await nextTaskChange(tasks)).toEqual({ kind: "CREATED", taskId: task.id, task });
    const renamed = (await onB(UPDATE_TASK, { input: { id: task.id, title: "Renamed on B" } })).data!.updateTask as TaskView;
    expect(await nextTaskChange(tasks)).toEqual({ kind: "UPDATED", taskId: task.id, task: renamed });
    await onB(DELETE_TASK, { id: task.id });
    expect(await nextTaskChange(tasks)).toEqual({ kind: "DELETED", taskId: task.id, task: renamed });

    await appendVia(b.db, user.id, conversation.id, ["written by B"]);
    expect(await nextMessage(messages)).toMatchObject({ seq: 1, content: "written by B" });
    tasks.dispose();
    messages.dispose();
  });

  it("should deliver the same change to subscribers on both instances", async () => {
    const { server: a } = instance(0);
    const { server: b } = instance(1);
    const user = await newUser(a);
    const onA = await live(a, a.connect(user.token), TASK_CHANGED);
    const onB = await live(b, b.connect(user.token), TASK_CHANGED);
    const task = (await user.gql<{ addTask: TaskView }>(ADD_TASK, { title: "Seen twice" })).data!.addTask;
    const expected = { kind: "CREATED", taskId: task.id, task };
    expect(await nextTaskChange(onA)).toEqual(expected);
    expect(await nextTaskChange(onB)).toEqual(expected);
    onA.dispose();
    onB.dispose();
  });

  // The postgres transport's own LISTEN connection: under REALTIME_TRANSPORT=nats there is none (nats-*.test.ts cover its outages).
  it.skipIf(onNatsTransport())("should recover both instances when both listeners are killed, with what was committed meanwhile", async () => {
    const { server: a } = instance(0);
    const { server: b } = instance(1);
    const user = await newUser(a);
    const conversation = await newConversation(a.db, user.id);
    const subs = [];
    for (const server of [a, b]) {
      const client = server.connect(user.token);
      subs.push({
        tasks: await live(server, client, TASK_CHANGED),
        messages: await live(server, client, MESSAGE_ADDED, { conversationId: conversation.globalId }),
      });
    }

    // Kill both listeners and keep them down.
    for (const { server, gate } of instances) await killListener(server, gate, admin);
    const task = (await b.request<{ addTask: TaskView }>(ADD_TASK, { title: "During the double outage" }, user.token)).data!.addTask;
    await appendVia(a.db, user.id, conversation.id, ["down 1", "down 2"]);
    expect(a.app.transport.connected).toBe(false);
    expect(b.app.transport.connected).toBe(false);

    const reconnected = instances.map(({ server }) => nextEvent(server.app.transport, "reconnected"));
    for (const { gate } of instances) gate.open();
    await Promise.all(reconnected);

    for (const { tasks, messages } of subs) {
      expect(await nextTaskChange(tasks)).toEqual({ kind: "CREATED", taskId: task.id, task });
      expect((await messagesUntil(messages, 2)).map((m) => [m.seq, m.content])).toEqual([
        [1, "down 1"],
        [2, "down 2"],
      ]);
    }
    // Live on both afterwards.
    await appendVia(b.db, user.id, conversation.id, ["up 3"]);
    for (const { tasks, messages } of subs) {
      expect(await nextMessage(messages)).toMatchObject({ seq: 3, content: "up 3" });
      expect(tasks.pending()).toEqual([]);
      tasks.dispose();
      messages.dispose();
    }
  });
});
