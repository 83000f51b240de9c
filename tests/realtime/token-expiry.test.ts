import { setTimeout as sleep } from "node:timers/promises";
import { SignJWT } from "jose";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { newUserId } from "../helpers/db.js";
import { newUser, type TestServer } from "../helpers/server.js";
import { TEST_JWT_SECRET, testVerifier, tokenFor } from "../helpers/tokens.js";
import {
  ADD_TASK,
  live,
  nextTaskChange,
  promiseState,
  readSse,
  startLiveServer,
  TASK_CHANGED,
  within,
  type LiveServer,
  type SseReader,
  type TaskView,
} from "./support.js";

/**
 * A socket or stream lives exactly as long as its token (to the second, however
 * far away exp is), never longer than AUTH_MAX_TOKEN_AGE, and a token with no
 * exp opens nothing.
 */
describe("how long subscriptions live", () => {
  let server: LiveServer;
  /** AUTH_MAX_TOKEN_AGE=2s. */
  let capped: LiveServer;
  const streams: SseReader[] = [];

  beforeAll(async () => {
    server = await startLiveServer();
    capped = await startLiveServer({ verifier: testVerifier({ maxTokenAgeSeconds: 2 }) });
  });
  afterAll(async () => {
    await Promise.all(streams.map((stream) => stream.cancel()));
    await server?.close();
    await capped?.close();
  });

  function postSse(target: TestServer, token: string): Promise<Response> {
    return fetch(target.url, {
      method: "POST",
      headers: { accept: "text/event-stream", "content-type": "application/json", authorization: `Bearer ${token}` },
      body: JSON.stringify({ query: TASK_CHANGED }),
    });
  }

  /** A taskChanged SSE stream, once the server has it in place. */
  async function sseSubscribe(target: TestServer, token: string): Promise<SseReader> {
    const before = target.app.realtime.establishedCount;
    const response = await postSse(target, token);
    expect(response.status).toBe(200);
    const stream = readSse(response);
    streams.push(stream);
    await vi.waitFor(() => expect(target.app.realtime.establishedCount, "established subscriptions").toBeGreaterThan(before), {
      timeout: 10_000,
      interval: 10,
    });
    return stream;
  }

  function tokenWithoutExp(userId: string): Promise<string> {
    return new SignJWT({})
      .setProtectedHeader({ alg: "HS256", typ: "JWT" })
      .setSubject(userId)
      .setIssuedAt()
      .sign(new TextEncoder().encode(TEST_JWT_SECRET));
  }

  it("should keep a socket opened with a 30-day token open and delivering", async () => {
    const user = await newUser(server, "token-30d");
    const client = server.connect(await tokenFor(user.id, { expiresIn: "30d" }));
    const sub = await live(server, client, TASK_CHANGED);
    await sleep(2000);
    expect(await promiseState(client.closed)).toBe("pending");
    expect(await promiseState(sub.ended)).toBe("pending");
    const task = (await user.gql<{ addTask: TaskView }>(ADD_TASK, { title: "A month to go" })).data!.addTask;
    expect(await nextTaskChange(sub)).toEqual({ kind: "CREATED", taskId: task.id, task });
    sub.dispose();
  });

  it("should keep an SSE stream opened with a 30-day token open and delivering", async () => {
    const user = await newUser(server, "token-30d-sse");
    const stream = await sseSubscribe(server, await tokenFor(user.id, { expiresIn: "30d" }));
    await sleep(2000);
    expect(await promiseState(stream.ended)).toBe("pending");
    const task = (await user.gql<{ addTask: TaskView }>(ADD_TASK, { title: "Streamed for a month" })).data!.addTask;
    expect(await stream.next()).toEqual({ data: { taskChanged: { kind: "CREATED", taskId: task.id, task } } });
  });

  it("should close the socket with 4403 when the token's exp passes, and not before", async () => {
    const user = await newUser(server, "token-2s");
    // A whole second boundary at least 2 s away: exp has one-second resolution.
    const exp = Math.ceil(Date.now() / 1000) + 2;
    const openedAt = Date.now();
    const client = server.connect(await tokenFor(user.id, { expiresIn: exp }));
    const sub = await live(server, client, TASK_CHANGED);
    const task = (await user.gql<{ addTask: TaskView }>(ADD_TASK, { title: "Before expiry" })).data!.addTask;
    expect(await nextTaskChange(sub)).toMatchObject({ kind: "CREATED", taskId: task.id });

    const closed = await within(client.closed, 15_000, "close at expiry");
    const closedAt = Date.now();
    expect(closed).toMatchObject({ code: 4403, reason: expect.stringMatching(/expired/i) });
    expect(closedAt).toBeGreaterThanOrEqual(exp * 1000);
    expect(closedAt - openedAt).toBeGreaterThanOrEqual(1500);
    expect(closedAt - exp * 1000).toBeLessThan(5000);
  });

  it("should refuse a token without exp: UNAUTHENTICATED over HTTP and SSE, 4403 over WebSocket", async () => {
    const token = await tokenWithoutExp(newUserId("no-exp"));
    const response = await server.request(`{ tasks { edges { node { id } } } }`, {}, token);
    expect(response.status).toBe(401);
    expect(response.data ?? null).toBeNull();
    expect(response.errors).toEqual([
      expect.objectContaining({ message: "The token has no expiry (exp)", extensions: expect.objectContaining({ code: "UNAUTHENTICATED" }) }),
    ]);

    const sse = await postSse(server, token);
    expect(sse.status).toBe(401);
    const stream = readSse(sse);
    streams.push(stream);
    expect((await stream.next()).errors?.map((error) => error.extensions?.code)).toEqual(["UNAUTHENTICATED"]);

    const client = server.connect(token);
    const sub = client.subscribe(TASK_CHANGED);
    expect((await within(client.closed, 10_000, "close")).code).toBe(4403);
    await expect(sub.ended).rejects.toBeDefined();
    expect(sub.pending()).toEqual([]);
  });

  it("should close a socket with 4403 at AUTH_MAX_TOKEN_AGE (2 s) though its token lasts an hour", async () => {
    const user = await newUser(capped, "max-age");
    const openedAt = Date.now();
    const client = capped.connect(user.token);
    const sub = await live(capped, client, TASK_CHANGED);
    const task = (await user.gql<{ addTask: TaskView }>(ADD_TASK, { title: "Capped" })).data!.addTask;
    expect(await nextTaskChange(sub)).toMatchObject({ kind: "CREATED", taskId: task.id });

    const closed = await within(client.closed, 15_000, "close at the maximum age");
    expect(closed.code).toBe(4403);
    expect(Date.now() - openedAt).toBeGreaterThanOrEqual(1500);
  });

  it("should end an SSE stream at AUTH_MAX_TOKEN_AGE (2 s) though its token lasts an hour", async () => {
    const user = await newUser(capped, "max-age-sse");
    const openedAt = Date.now();
    const stream = await sseSubscribe(capped, user.token);
    await within(stream.ended, 15_000, "end of the stream at the maximum age");
    expect(stream.completed()).toBe(true);
    expect(Date.now() - openedAt).toBeGreaterThanOrEqual(1500);
  });
});
