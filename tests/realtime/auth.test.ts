import { createClient } from "graphql-ws";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { WebSocket } from "ws";
import { newUserId } from "../helpers/db.js";
import { newUser } from "../helpers/server.js";
import { tokenFor } from "../helpers/tokens.js";
import {
  ADD_TASK,
  live,
  MESSAGE_ADDED,
  newConversation,
  nextTaskChange,
  startLiveServer,
  TASK_CHANGED,
  within,
  type LiveServer,
  type TaskView,
} from "./support.js";

describe("subscription auth over graphql-ws", () => {
  let server: LiveServer;

  beforeAll(async () => {
    server = await startLiveServer();
  });
  afterAll(async () => {
    await server.close();
  });

  it("should close the socket with 4403 for an invalid token", async () => {
    const client = server.connect("not-a-jwt");
    const sub = client.subscribe(TASK_CHANGED);
    expect((await within(client.closed, 10_000, "close")).code).toBe(4403);
    await expect(sub.ended).rejects.toBeDefined();
    expect(sub.pending()).toEqual([]);
  });

  it("should close the socket with 4403 for a token signed with another secret", async () => {
    const client = server.connect(await tokenFor(newUserId(), { secret: "some-other-secret-that-is-long-enough-to-sign" }));
    client.subscribe(TASK_CHANGED);
    expect((await within(client.closed, 10_000, "close")).code).toBe(4403);
  });

  it("should close the socket with 4403 for an expired token", async () => {
    const client = server.connect(await tokenFor(newUserId(), { expiresIn: -10 }));
    client.subscribe(TASK_CHANGED);
    expect((await within(client.closed, 10_000, "close")).code).toBe(4403);
  });

  it("should close the socket with 4403 without a token", async () => {
    const client = server.connect(undefined);
    const sub = client.subscribe(TASK_CHANGED);
    expect((await within(client.closed, 10_000, "close")).code).toBe(4403);
    await expect(sub.ended).rejects.toBeDefined();
  });

  it("should accept the token from the upgrade request's Authorization header", async () => {
    const user = await newUser(server);
    let closed: (event: { code: number }) => void = () => {};
    const closedPromise = new Promise<{ code: number }>((resolve) => (closed = resolve));
    const authorization = `Bearer ${user.token}`;
    class AuthorizedWebSocket extends WebSocket {
      constructor(address: string, protocols?: string | string[]) {
        super(address, protocols, { headers: { authorization } });
      }
    }
    const client = createClient({
      url: server.wsUrl,
      webSocketImpl: AuthorizedWebSocket,
      retryAttempts: 0,
      on: { closed: (event) => closed(event as { code: number }) },
    });
    try {
      const before = server.app.realtime.establishedCount;
      const events: unknown[] = [];
      let onEvent: () => void = () => {};
      const received = new Promise<void>((resolve) => (onEvent = resolve));
      const dispose = client.subscribe(
        { query: TASK_CHANGED },
        {
          next: (value) => {
            events.push(value);
            onEvent();
          },
          error: () => {},
          complete: () => {},
        },
      );
      await vi.waitFor(() => expect(server.app.realtime.establishedCount, "established subscriptions").toBeGreaterThan(before), {
        timeout: 10_000,
        interval: 10,
      });
      const task = (await user.gql<{ addTask: TaskView }>(ADD_TASK, { title: "Via header" })).data!.addTask;
      await within(received, 10_000, "event");
      expect(events).toEqual([{ data: { taskChanged: { kind: "CREATED", taskId: task.id, task } } }]);
      dispose();
    } finally {
      await client.dispose();
    }
    expect((await closedPromise).code).toBe(1000);
  });

  it("should close the socket with 4403 once the token expires", async () => {
    const user = await newUser(server);
    const token = await tokenFor(user.id, { expiresIn: "2s" });
    const client = server.connect(token);
    const sub = await live(server, client, TASK_CHANGED);
    // Working until then.
    const task = (await user.gql<{ addTask: TaskView }>(ADD_TASK, { title: "Before expiry" })).data!.addTask;
    expect(await nextTaskChange(sub)).toMatchObject({ kind: "CREATED", taskId: task.id });

    const closed = await within(client.closed, 10_000, "close after expiry");
    expect(closed.code).toBe(4403);
    expect(closed.reason).toMatch(/expired/i);
    // The subscription ends with the socket (completed by the server at expiry, or errored by the close).
    await within(
      sub.ended.catch(() => {}),
      10_000,
      "subscription end",
    );
  });

  it("should answer NOT_FOUND for a subscription to another user's conversation", async () => {
    const owner = await newUser(server, "owner");
    const intruder = await newUser(server, "intruder");
    const conversation = await newConversation(server.db, owner.id);
    const client = server.connect(intruder.token);

    for (const variables of [{ conversationId: conversation.globalId }, { conversationId: conversation.globalId, afterSeq: 0 }]) {
      const sub = client.subscribe(MESSAGE_ADDED, variables);
      const result = await sub.next();
      expect(result.data ?? null).toBeNull();
      expect(result.errors).toHaveLength(1);
      expect(result.errors?.[0]).toMatchObject({ message: "Conversation not found", extensions: { code: "NOT_FOUND" } });
      await within(sub.ended, 10_000, "end of the failed subscription");
    }
    // The socket itself stays usable.
    const tasks = await live(server, client, TASK_CHANGED);
    const task = (await intruder.gql<{ addTask: TaskView }>(ADD_TASK, { title: "Still here" })).data!.addTask;
    expect(await nextTaskChange(tasks)).toMatchObject({ kind: "CREATED", taskId: task.id });
    tasks.dispose();
  });

  it("should answer BAD_USER_INPUT for afterSeq without conversationId, and for a negative afterSeq", async () => {
    const user = await newUser(server);
    const conversation = await newConversation(server.db, user.id);
    const client = server.connect(user.token);

    const withoutConversation = client.subscribe(MESSAGE_ADDED, { afterSeq: 3 });
    const first = await withoutConversation.next();
    expect(first.errors).toHaveLength(1);
    expect(first.errors?.[0]?.extensions).toMatchObject({ code: "BAD_USER_INPUT", field: "afterSeq" });
    await within(withoutConversation.ended, 10_000, "end");

    const negative = client.subscribe(MESSAGE_ADDED, { conversationId: conversation.globalId, afterSeq: -1 });
    const second = await negative.next();
    expect(second.errors?.[0]?.extensions).toMatchObject({ code: "BAD_USER_INPUT", field: "afterSeq" });
    await within(negative.ended, 10_000, "end");

    const malformed = client.subscribe(MESSAGE_ADDED, { conversationId: "not-an-id" });
    const third = await malformed.next();
    expect(third.errors?.[0]?.extensions).toMatchObject({ code: "BAD_USER_INPUT", field: "conversationId" });
    await within(malformed.ended, 10_000, "end");
  });
});
