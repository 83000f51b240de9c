import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { newUser, startTestServer, type TestServer } from "../helpers/server.js";
import { tokenFor } from "../helpers/tokens.js";
import {
  ADD_TASK,
  appendVia,
  COMPLETE_TASK,
  MESSAGE_ADDED,
  newConversation,
  readSse,
  TASK_CHANGED,
  within,
  type SseReader,
  type TaskView,
} from "./support.js";

describe("subscriptions over SSE", () => {
  let server: TestServer;
  const streams: SseReader[] = [];

  function post(body: unknown, token: string | undefined): Promise<Response> {
    const headers: Record<string, string> = { accept: "text/event-stream", "content-type": "application/json" };
    if (token !== undefined) headers.authorization = `Bearer ${token}`;
    return fetch(server.url, { method: "POST", headers, body: JSON.stringify(body) });
  }

  /** Opens the stream and resolves once the server has the subscription in place. */
  async function subscribe(query: string, variables: Record<string, unknown> | undefined, token: string): Promise<SseReader> {
    const before = server.app.realtime.establishedCount;
    const response = await post({ query, variables }, token);
    expect(response.status).toBe(200);
    expect(response.headers.get("content-type")).toMatch(/^text\/event-stream/);
    const stream = readSse(response);
    streams.push(stream);
    await vi.waitFor(() => expect(server.app.realtime.establishedCount, "established subscriptions").toBeGreaterThan(before), {
      timeout: 10_000,
      interval: 10,
    });
    return stream;
  }

  beforeAll(async () => {
    server = await startTestServer();
  });
  afterAll(async () => {
    await Promise.all(streams.map((stream) => stream.cancel()));
    await server.close();
  });

  it("should stream taskChanged events after mutations", async () => {
    const user = await newUser(server);
    const stream = await subscribe(TASK_CHANGED, undefined, user.token);

    const task = (await user.gql<{ addTask: TaskView }>(ADD_TASK, { title: "Over SSE" })).data!.addTask;
    expect(await stream.next()).toEqual({ data: { taskChanged: { kind: "CREATED", taskId: task.id, task } } });
    const completed = (await user.gql<{ completeTask: TaskView }>(COMPLETE_TASK, { id: task.id })).data!.completeTask;
    expect(await stream.next()).toEqual({ data: { taskChanged: { kind: "UPDATED", taskId: task.id, task: completed } } });
    await stream.cancel();
  });

  it("should stream messageAdded with an afterSeq replay", async () => {
    const user = await newUser(server);
    const conversation = await newConversation(server.db, user.id);
    await appendVia(server.db, user.id, conversation.id, ["one", "two"]);
    const stream = await subscribe(MESSAGE_ADDED, { conversationId: conversation.globalId, afterSeq: 1 }, user.token);
    expect(await stream.next()).toMatchObject({ data: { messageAdded: { seq: 2, content: "two" } } });
    await appendVia(server.db, user.id, conversation.id, ["three"]);
    expect(await stream.next()).toMatchObject({ data: { messageAdded: { seq: 3, content: "three" } } });
    await stream.cancel();
  });

  it("should answer 401 with one UNAUTHENTICATED result and complete, without a token", async () => {
    const response = await post({ query: TASK_CHANGED }, undefined);
    expect(response.status).toBe(401);
    expect(response.headers.get("content-type")).toMatch(/^text\/event-stream/);
    const stream = readSse(response);
    streams.push(stream);
    expect(await stream.next()).toEqual({
      errors: [{ message: expect.stringContaining("Missing Authorization header"), extensions: { code: "UNAUTHENTICATED" } }],
    });
    await within(stream.ended, 10_000, "complete");
    expect(stream.completed()).toBe(true);
  });

  it("should answer 401 UNAUTHENTICATED for an invalid token", async () => {
    const response = await post({ query: TASK_CHANGED }, "garbage");
    expect(response.status).toBe(401);
    const stream = readSse(response);
    streams.push(stream);
    const result = await stream.next();
    expect(result.data ?? null).toBeNull();
    expect(result.errors?.map((error) => error.extensions?.code)).toEqual(["UNAUTHENTICATED"]);
    await within(stream.ended, 10_000, "complete");
  });

  it("should end the stream when the token expires", async () => {
    const user = await newUser(server);
    const stream = await subscribe(TASK_CHANGED, undefined, await tokenFor(user.id, { expiresIn: "2s" }));
    const task = (await user.gql<{ addTask: TaskView }>(ADD_TASK, { title: "Before expiry" })).data!.addTask;
    expect(await stream.next()).toMatchObject({ data: { taskChanged: { kind: "CREATED", taskId: task.id } } });
    await within(stream.ended, 10_000, "end of the stream after expiry");
    expect(stream.completed()).toBe(true);
  });
});
