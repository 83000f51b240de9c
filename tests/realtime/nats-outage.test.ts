import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { toGlobalId } from "../../src/lib/ids.js";
import type { DeferredNatsTransport } from "../../src/realtime/create-transport.js";
import { natsServerAvailable } from "../helpers/nats.js";
import { startTcpGate, type TcpGate } from "../helpers/tcp-gate.js";
import { newUser } from "../helpers/server.js";
import type { QueuedSubscription } from "../helpers/ws-client.js";
import { FAST_TRANSPORT, natsRig, until, type NatsRig } from "./nats-support.js";
import {
  ADD_TASK,
  appendVia,
  live,
  MESSAGE_ADDED,
  newConversation,
  nextEvent,
  TASK_CHANGED,
  type LiveServer,
  type MessageView,
  type TaskChangeView,
  type TaskView,
} from "./support.js";

/**
 * NATS going away under the nats transport (issue 27): wake-ups published
 * while a subscriber could not hear them are lost to it, and it catches up
 * from Postgres when its connection is back; rows the relay could not publish
 * wait in the outbox (bounded: pruned past an age, leaving a resync marker).
 * Each case counts every event: nothing lost, nothing twice.
 */
describe.runIf(natsServerAvailable())("the nats transport when NATS goes away", () => {
  let rig: NatsRig;
  const gates: TcpGate[] = [];

  beforeAll(async () => {
    rig = await natsRig();
  });
  afterAll(async () => {
    await rig?.dispose();
    await Promise.all(gates.map((gate) => gate.close()));
  });

  async function gated(options: Parameters<NatsRig["instance"]>[0] = {}): Promise<{ server: LiveServer; gate: TcpGate }> {
    const gate = await startTcpGate(rig.nats.url);
    gates.push(gate);
    const server = await rig.instance({ transport: { ...rig.transport, servers: [gate.url] }, ...options });
    return { server, gate };
  }

  it("should catch up every write made while the NATS server was stopped, and say so on /ready", async () => {
    await rig.closeInstances();
    const a = await rig.instance();
    const b = await rig.instance();
    await until(() => a.app.transport.connected && b.app.transport.connected, "both instances are on NATS");
    const user = await newUser(a);
    const conversation = await newConversation(a.db, user.id);
    const client = a.connect(user.token);
    const tasks = await live(a, client, TASK_CHANGED);
    const messages = await live(a, client, MESSAGE_ADDED, { conversationId: conversation.globalId });

    const down = nextEvent(a.app.transport, "down");
    await rig.nats.stop();
    await down;
    expect((await fetch(`${a.baseUrl}/ready`)).status).toBe(503);
    const written: string[] = [];
    for (let i = 0; i < 5; i += 1) {
      const task = (await b.request<{ addTask: TaskView }>(ADD_TASK, { title: `through B ${i}` }, user.token)).data!.addTask;
      written.push(task.id);
      written.push(await insertTask(rig, user.id, `through SQL ${i}`));
    }
    await appendVia(b.db, user.id, conversation.id, ["one", "two", "three"]);
    // Nothing was published: every wake-up waits in the outbox.
    expect(await rig.outboxSize()).toBeGreaterThanOrEqual(13);

    await rig.nats.start();
    expect(await changesOf(tasks, written.length)).toEqual([...written].sort());
    expect((await messagesOf(messages, 3)).map((message) => message.seq)).toEqual([1, 2, 3]);
    await expectNothingMore(rig, user.id, tasks);
    expect((await fetch(`${a.baseUrl}/ready`)).status).toBe(200);
    await until(async () => (await rig.outboxSize()) === 0, "the outbox is drained");
    tasks.dispose();
    messages.dispose();
  });

  it("should catch up from the database what was published while this instance alone was cut off", async () => {
    // The relay leads elsewhere and keeps publishing: what it publishes during the cut is lost to the subscriber.
    await rig.closeInstances();
    const relayHost = await rig.instance();
    await until(() => relayOf(relayHost).leading, "the ungated instance leads the relay");
    const { server: subscriber, gate } = await gated();
    await until(() => subscriber.app.transport.connected, "the subscriber is on NATS");
    const user = await newUser(subscriber);
    const tasks = await live(subscriber, subscriber.connect(user.token), TASK_CHANGED);

    const down = nextEvent(subscriber.app.transport, "down");
    gate.cut();
    await down;
    const written: string[] = [];
    for (let i = 0; i < 6; i += 1) written.push(await insertTask(rig, user.id, `during the cut ${i}`));
    await until(async () => (await rig.outboxSize()) === 0, "the relay has published the cut's writes");
    const back = nextEvent(subscriber.app.transport, "reconnected");
    gate.open();
    await back;
    expect(await changesOf(tasks, written.length)).toEqual([...written].sort());
    await expectNothingMore(rig, user.id, tasks);
    tasks.dispose();
  });

  it("should not push, as a change, a commit from before the subscription that the relay publishes after it", async () => {
    await rig.closeInstances();
    const { server: relayHost, gate } = await gated();
    await until(() => relayOf(relayHost).leading, "the gated instance leads the relay");
    const subscriber = await rig.instance();
    await until(() => subscriber.app.transport.connected, "the subscriber is on NATS");
    const user = await newUser(subscriber);
    // Written while the relay cannot publish; the subscription starts after the commit, before the publish.
    gate.cut();
    await until(() => !relayHost.app.transport.connected, "the relay host lost NATS");
    await insertTask(rig, user.id, "before the subscription");
    const tasks = await live(subscriber, subscriber.connect(user.token), TASK_CHANGED);
    gate.open();
    await until(async () => (await rig.outboxSize()) === 0, "the relay has published the earlier commit");
    await expectNothingMore(rig, user.id, tasks);
    tasks.dispose();
  });

  it("should prune wake-ups its relay could not publish in time, and have subscribers catch up on the resync it leaves", async () => {
    await rig.closeInstances();
    // The relay's own NATS connection is cut; the subscriber's is not, so it has no reconnect to catch up on.
    const { server: relayHost, gate } = await gated({ listener: { ...FAST_TRANSPORT, relay: { maxAgeMs: 1500 } } });
    await until(() => relayOf(relayHost).leading, "the gated instance leads the relay");
    const subscriber = await rig.instance();
    await until(() => subscriber.app.transport.connected, "the subscriber is on NATS");
    const user = await newUser(subscriber);
    const tasks = await live(subscriber, subscriber.connect(user.token), TASK_CHANGED);

    gate.cut();
    await until(() => !relayHost.app.transport.connected, "the relay host lost NATS");
    const written: string[] = [];
    for (let i = 0; i < 4; i += 1) written.push(await insertTask(rig, user.id, `never published ${i}`));
    // Pruned to the one resync marker.
    await until(async () => (await rig.admin.query(`SELECT 1 FROM realtime_outbox WHERE channel <> 'resync'`)).rowCount === 0, "the rows are pruned");
    expect(await rig.outboxSize()).toBe(1);
    expect(subscriber.app.transport.connected).toBe(true);
    gate.open();
    expect(await changesOf(tasks, written.length)).toEqual([...written].sort());
    await expectNothingMore(rig, user.id, tasks);
    tasks.dispose();
  });
});

async function insertTask(rig: NatsRig, userId: string, title: string): Promise<string> {
  const { rows } = await rig.admin.query<{ id: string }>(`INSERT INTO tasks (user_id, title) VALUES ($1, $2) RETURNING id`, [userId, title]);
  return toGlobalId("Task", rows[0]!.id);
}

/** The task ids of the next `count` events (all CREATED), sorted. */
async function changesOf(sub: QueuedSubscription, count: number): Promise<string[]> {
  const ids: string[] = [];
  while (ids.length < count) {
    const result = await sub.next(20_000);
    if (result.errors) throw new Error(`taskChanged errored: ${JSON.stringify(result.errors)}`);
    const change = result.data?.taskChanged as TaskChangeView;
    expect(change.kind).toBe("CREATED");
    ids.push(change.taskId);
  }
  return ids.sort();
}

async function messagesOf(sub: QueuedSubscription, count: number): Promise<MessageView[]> {
  const messages: MessageView[] = [];
  while (messages.length < count) {
    const result = await sub.next(20_000);
    if (result.errors) throw new Error(`messageAdded errored: ${JSON.stringify(result.errors)}`);
    messages.push(result.data?.messageAdded as MessageView);
  }
  return messages;
}

/** A last write arrives next: nothing else (no duplicate) was on its way before it. */
async function expectNothingMore(rig: NatsRig, userId: string, sub: QueuedSubscription): Promise<void> {
  const last = await insertTask(rig, userId, "the last one");
  expect(await changesOf(sub, 1)).toEqual([last]);
}

function relayOf(server: LiveServer): { leading: boolean } {
  return (server.app.transport as DeferredNatsTransport).relay;
}
