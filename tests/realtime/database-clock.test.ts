import { setTimeout as sleep } from "node:timers/promises";
import type pg from "pg";
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import { acquireLease } from "../../src/chat/lease.js";
import type { AssistantDeps } from "../../src/chat/turn-run.js";
import { parseId } from "../../src/lib/ids.js";
import { cohereAssistant, sendMessage } from "../helpers/chat.js";
import { skewProcessClock } from "../helpers/clock.js";
import { databaseUrl } from "../helpers/db.js";
import { startFakeCohere, textReply, type FakeCohere } from "../helpers/fake-cohere.js";
import { newUser, onNatsTransport } from "../helpers/server.js";
import {
  ADD_TASK,
  adminClient,
  appendVia,
  killListener,
  live,
  nextEvent,
  nextTaskChange,
  startLiveServer,
  TASK_CHANGED,
  type LiveServer,
  type TaskChangeView,
  type TaskView,
} from "./support.js";
import { startTcpGate, type TcpGate } from "../helpers/tcp-gate.js";

/** How far this process's clock runs behind the database's in these tests. */
const SKEW_MS = -60_000;

/**
 * An instance whose clock is a minute behind its database: every timestamp
 * still comes from the database, and catch-up, which compares them with the
 * database's time, still finds everything.
 */
describe("an app whose clock runs 60 s behind the database's", () => {
  let gate: TcpGate;
  let fake: FakeCohere;
  let server: LiveServer;
  let assistant: AssistantDeps;
  let admin: pg.Client;
  let restoreClock: (() => void) | undefined;

  beforeAll(async () => {
    gate = await startTcpGate(databaseUrl());
    fake = await startFakeCohere();
    assistant = cohereAssistant(fake);
    server = await startLiveServer({ listenUrl: gate.url, assistant });
    admin = await adminClient(databaseUrl());
  });
  afterEach(() => {
    restoreClock?.();
    restoreClock = undefined;
  });
  afterAll(async () => {
    gate?.open();
    await server?.close();
    await gate?.close();
    await fake?.close();
    await admin?.end();
  });

  /** The database's now() in epoch milliseconds, rounded down or up to a whole millisecond (columns hold ms). */
  async function databaseNowMs(round: "floor" | "ceil"): Promise<number> {
    const { rows } = await admin.query<{ ms: number }>(`SELECT ${round}(extract(epoch FROM now()) * 1000)::float8 AS ms`);
    return rows[0]!.ms;
  }

  /** Runs `work` and returns the database's time window around it (each statement's now() falls inside). */
  async function inDatabaseWindow<T>(work: () => Promise<T>): Promise<{ result: T; from: number; to: number }> {
    const from = await databaseNowMs("floor");
    const result = await work();
    const to = await databaseNowMs("ceil");
    return { result, from, to };
  }

  function expectIn(instant: string | Date, window: { from: number; to: number }): void {
    const ms = typeof instant === "string" ? Date.parse(instant) : instant.getTime();
    expect(ms).toBeGreaterThanOrEqual(window.from);
    expect(ms).toBeLessThanOrEqual(window.to);
  }

  /** Skews this process's clock and checks that the skew is real: the database is ahead by about a minute. */
  async function skew(): Promise<void> {
    restoreClock = skewProcessClock(SKEW_MS);
    const databaseNow = await databaseNowMs("floor");
    expect(databaseNow - Date.now()).toBeGreaterThan(-SKEW_MS - 5000);
  }

  it("should stamp a new task's createdAt and updatedAt with the database's now(), not the process clock", async () => {
    await skew();
    const user = await newUser(server, "clock-task");
    type Stamped = { id: string; createdAt: string; updatedAt: string };
    const added = await inDatabaseWindow(async () => {
      const response = await user.gql<{ addTask: Stamped }>(`mutation { addTask(input: { title: "Stamped" }) { id createdAt updatedAt } }`);
      return response.data!.addTask;
    });
    expectIn(added.result.createdAt, added);
    expect(added.result.updatedAt).toBe(added.result.createdAt);

    const updated = await inDatabaseWindow(async () => {
      const response = await user.gql<{ updateTask: Stamped }>(
        `mutation($id: ID!) { updateTask(input: { id: $id, title: "Restamped" }) { id createdAt updatedAt } }`,
        { id: added.result.id },
      );
      return response.data!.updateTask;
    });
    expectIn(updated.result.updatedAt, updated);
    expect(updated.result.createdAt).toBe(added.result.createdAt);
  });

  it("should stamp conversations and messages by the database's clock, and move updatedAt for a message but not for a turn lease", async () => {
    await skew();
    const user = await newUser(server, "clock-conversation");
    const created = await inDatabaseWindow(async () => {
      const response = await user.gql<{ createConversation: { id: string; createdAt: string; updatedAt: string } }>(
        `mutation { createConversation(input: { title: "Clocked" }) { id createdAt updatedAt } }`,
      );
      return response.data!.createConversation;
    });
    expectIn(created.result.createdAt, created);
    expect(created.result.updatedAt).toBe(created.result.createdAt);
    const conversationId = parseId(created.result.id, "id", "Conversation");

    await sleep(5); // so that a move of updatedAt shows at millisecond precision
    const appended = await inDatabaseWindow(() => appendVia(server.db, user.id, conversationId, ["hello"]));
    expectIn(appended.result[0]!.createdAt, appended);
    const afterMessage = await server.db.conversation.findUniqueOrThrow({ where: { id: conversationId } });
    expectIn(afterMessage.updatedAt, appended);
    expect(afterMessage.updatedAt.getTime()).toBeGreaterThan(Date.parse(created.result.updatedAt));

    // Taking and releasing the turn lease is bookkeeping: the conversation list's order stays.
    const lease = await acquireLease(server.db, user.id, conversationId, { ttlMs: 60_000, deadline: performance.now() + 5000 });
    await lease.release();
    const afterLease = await server.db.conversation.findUniqueOrThrow({ where: { id: conversationId } });
    expect(afterLease.updatedAt).toEqual(afterMessage.updatedAt);
  });

  it("should give a new conversation's turn lease an expiry by the database's clock", async () => {
    await skew();
    const user = await newUser(server, "clock-lease");
    fake.enqueue({ ...textReply("Noted."), delayMs: 1000 });
    const sending = sendMessage(user, { content: "Remember the milk" });
    // The turn is waiting for the model.
    await vi.waitFor(
      () => {
        expect(fake.requests.length, "model calls").toBeGreaterThan(0);
        expect(fake.pending(), "replies not yet taken").toBe(0);
      },
      { timeout: 15_000, interval: 10 },
    );
    const { rows } = await admin.query<{ remaining: number }>(
      `SELECT extract(epoch FROM turn_lease_expires_at - now())::float8 AS remaining FROM conversations WHERE user_id = $1`,
      [user.id],
    );
    // The lease runs for the turn's timeout plus 30 s, counted from the database's now() when the turn opened.
    const ttlSeconds = (assistant.turnTimeoutMs + 30_000) / 1000;
    expect(rows).toHaveLength(1);
    expect(rows[0]!.remaining).toBeGreaterThan(ttlSeconds - 10);
    expect(rows[0]!.remaining).toBeLessThanOrEqual(ttlSeconds);
    const response = await sending;
    expect(response.errors).toBeUndefined();
    expect(response.data?.sendMessage.reply?.content).toBe("Noted.");
  });

  // The postgres transport's own LISTEN connection: under REALTIME_TRANSPORT=nats there is none (nats-*.test.ts cover its outages).
  it.skipIf(onNatsTransport())("should deliver, after a listener outage, every task created during it", async () => {
    await skew();
    const user = await newUser(server, "clock-outage");
    const tasks = await live(server, server.connect(user.token), TASK_CHANGED);
    await killListener(server, gate, admin);

    const created: TaskView[] = [];
    for (const title of ["During 1", "During 2", "During 3"]) {
      created.push((await user.gql<{ addTask: TaskView }>(ADD_TASK, { title })).data!.addTask);
    }
    expect(tasks.pending()).toEqual([]);
    const reconnected = nextEvent(server.app.transport, "reconnected");
    gate.open();
    await reconnected;

    const received = new Map<string, TaskChangeView>();
    for (const _ of created) {
      const event = await nextTaskChange(tasks);
      received.set(event.taskId, event);
    }
    expect(received).toEqual(new Map(created.map((task) => [task.id, { kind: "CREATED", taskId: task.id, task }])));

    const after = (await user.gql<{ addTask: TaskView }>(ADD_TASK, { title: "After" })).data!.addTask;
    expect(await nextTaskChange(tasks)).toEqual({ kind: "CREATED", taskId: after.id, task: after });
    expect(tasks.pending()).toEqual([]);
    tasks.dispose();
  });
});
