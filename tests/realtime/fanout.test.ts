import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { newUser } from "../helpers/server.js";
import type { QueuedSubscription } from "../helpers/ws-client.js";
import { ADD_TASK, nextTaskChange, startLiveServer, TASK_CHANGED, type LiveServer, type TaskView } from "./support.js";

const CONNECTIONS = 10;
const PER_CONNECTION = 100;
const TOTAL = CONNECTIONS * PER_CONNECTION;

/**
 * A thousand subscribers of one user on one instance (SUBSCRIPTIONS_PER_USER
 * raised to allow it), multiplexed over ten graphql-ws connections. Bounded
 * generously; speed is never asserted.
 */
describe("a thousand subscribers", { timeout: 60_000 }, () => {
  let server: LiveServer;

  beforeAll(async () => {
    server = await startLiveServer({ realtime: { subscriptionsPerUser: TOTAL } });
  });
  afterAll(async () => {
    await server.close();
  });

  it("should deliver one change to each of 1,000 concurrent taskChanged subscribers exactly once", async () => {
    const user = await newUser(server);
    const before = server.app.realtime.establishedCount;
    const subs: QueuedSubscription[] = [];
    for (let c = 0; c < CONNECTIONS; c += 1) {
      const client = server.connect(user.token);
      for (let s = 0; s < PER_CONNECTION; s += 1) subs.push(client.subscribe(TASK_CHANGED));
    }
    await vi.waitFor(() => expect(server.app.realtime.establishedCount, "established subscriptions").toBeGreaterThanOrEqual(before + TOTAL), {
      timeout: 50_000,
      interval: 10,
    });

    const task = (await user.gql<{ addTask: TaskView }>(ADD_TASK, { title: "For everyone" })).data!.addTask;
    const events = await Promise.all(subs.map((sub) => nextTaskChange(sub, 50_000)));
    const expected = { kind: "CREATED", taskId: task.id, task };
    expect(events).toHaveLength(TOTAL);
    for (const event of events) expect(event).toEqual(expected);

    // Exactly once: each subscriber's next event is the next change, not a repeat.
    const second = (await user.gql<{ addTask: TaskView }>(ADD_TASK, { title: "Second" })).data!.addTask;
    const next = await Promise.all(subs.map((sub) => nextTaskChange(sub, 50_000)));
    expect(new Set(next.map((event) => event.taskId))).toEqual(new Set([second.id]));
    expect(next.every((event) => event.kind === "CREATED")).toBe(true);
    for (const sub of subs) expect(sub.pending()).toEqual([]);
    for (const sub of subs) sub.dispose();
  });
});
