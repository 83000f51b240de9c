import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { newUser, startTestServer, waitForSubscriptions, type TestServer } from "../helpers/server.js";
import { wsClient, type QueuedSubscription, type TestWsClient } from "../helpers/ws-client.js";
import { ADD_TASK, nextTaskChange, TASK_CHANGED, type TaskView } from "./support.js";

const CONNECTIONS = 10;
const PER_CONNECTION = 100;
const TOTAL = CONNECTIONS * PER_CONNECTION;

/**
 * A thousand subscribers on one instance, multiplexed over ten graphql-ws
 * connections. Bounded generously; speed is never asserted.
 */
describe("a thousand subscribers", { timeout: 60_000 }, () => {
  let server: TestServer;
  const clients: TestWsClient[] = [];

  beforeAll(async () => {
    server = await startTestServer();
  });
  afterAll(async () => {
    await Promise.all(clients.map((client) => client.dispose()));
    await server.close();
  });

  it("should deliver one change to each of 1,000 concurrent taskChanged subscribers exactly once", async () => {
    const user = await newUser(server);
    const before = server.app.realtime.establishedCount;
    const subs: QueuedSubscription[] = [];
    for (let c = 0; c < CONNECTIONS; c += 1) {
      const client = wsClient(server.wsUrl, user.token);
      clients.push(client);
      for (let s = 0; s < PER_CONNECTION; s += 1) subs.push(client.subscribe(TASK_CHANGED));
    }
    await waitForSubscriptions(server, before, TOTAL, 50_000);

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
