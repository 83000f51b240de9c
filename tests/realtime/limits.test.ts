import { once } from "node:events";
import { request, type IncomingMessage } from "node:http";
import { Readable } from "node:stream";
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import type pg from "pg";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { WebSocket } from "ws";
import { databaseUrl } from "../helpers/db.js";
import { newUser } from "../helpers/server.js";
import type { QueuedSubscription } from "../helpers/ws-client.js";
import {
  ADD_TASK,
  adminClient,
  live,
  MESSAGE_ADDED,
  newConversation,
  nextTaskChange,
  readSse,
  startLiveServer,
  TASK_CHANGED,
  within,
  type LiveServer,
  type TaskView,
} from "./support.js";

/** Subscription caps (SUBSCRIPTIONS_PER_USER, default 50) and the bound on what waits for a slow subscriber (1,000 events). */
describe("subscription limits", () => {
  let server: LiveServer;
  let admin: pg.Client;

  beforeAll(async () => {
    // A socket paused to fill its buffers cannot answer pings either: with the 12 s default the
    // keep-alive cut it, on a loaded machine, before the test resumed it to read the overflow
    // error. The keep-alive has its own test below; here it waits for the test's conditions.
    server = await startLiveServer({ ws: { keepAliveMs: 3_600_000 } });
    admin = await adminClient(databaseUrl());
  });
  afterAll(async () => {
    await server.close();
    await admin.end();
  });

  it("should answer a user's 51st open subscription with RATE_LIMITED while the 50 open ones keep working", async () => {
    const user = await newUser(server);
    const conversation = await newConversation(server.db, user.id);
    const client = server.connect(user.token);
    const open: QueuedSubscription[] = [];
    for (let i = 0; i < 49; i += 1) open.push(await live(server, client, TASK_CHANGED));
    open.push(await live(server, client, MESSAGE_ADDED, { conversationId: conversation.globalId }));

    const refused = client.subscribe(TASK_CHANGED);
    const answer = await refused.next();
    expect(answer.errors).toEqual([
      expect.objectContaining({
        message: expect.stringContaining("at most 50"),
        extensions: expect.objectContaining({ code: "RATE_LIMITED" }),
      }),
    ]);
    await within(refused.ended, 10_000, "the refused subscription completes");
    // Another user is not affected.
    const other = await newUser(server);
    const otherTasks = await live(server, server.connect(other.token), TASK_CHANGED);

    const task = (await user.gql<{ addTask: TaskView }>(ADD_TASK, { title: "For the fifty" })).data!.addTask;
    for (const sub of open.slice(0, 49)) expect(await nextTaskChange(sub)).toEqual({ kind: "CREATED", taskId: task.id, task });
    expect(open[49]!.pending()).toEqual([]);

    // Ending one makes room for another.
    open.shift()!.dispose();
    await vi.waitFor(() => expect(server.app.realtime.subscriberCount, "subscribers once one has ended").toBe(50), { timeout: 15_000, interval: 10 });
    const again = await live(server, client, TASK_CHANGED);
    const second = (await user.gql<{ addTask: TaskView }>(ADD_TASK, { title: "Room again" })).data!.addTask;
    expect(await nextTaskChange(again)).toMatchObject({ kind: "CREATED", taskId: second.id });
    for (const sub of [...open, again, otherTasks]) sub.dispose();
  });

  it("should end a subscriber that stops reading with SUBSCRIPTION_OVERFLOW, holding at most 1,000 events for it, while another keeps receiving", async () => {
    const gc = exposeGc();
    const user = await newUser(server);
    const conversation = await newConversation(server.db, user.id);
    const query = `subscription ($id: ID!) { messageAdded(conversationId: $id) { seq content } }`;

    // A consumer that reads everything.
    const reader = await live(server, server.connect(user.token), query, { id: conversation.globalId });
    let read = 0;
    const readAll = (async () => {
      for (;;) {
        const result = await reader.next(30_000);
        const seq = (result.data?.messageAdded as { seq: number } | undefined)?.seq;
        if (seq !== read + 1) throw new Error(`the reader got ${JSON.stringify(result).slice(0, 200)} after seq ${read}`);
        read = seq;
      }
    })();
    readAll.catch(() => {});

    // A raw graphql-transport-ws socket that stops reading once subscribed.
    const before = server.app.realtime.establishedCount;
    const stalled = await rawSubscriber(server.wsUrl, user.token, { query, variables: { id: conversation.globalId } });
    await vi.waitFor(() => expect(server.app.realtime.establishedCount, "established subscriptions").toBe(before + 1), {
      timeout: 15_000,
      interval: 10,
    });
    stalled.socket.pause();

    gc();
    const heapBefore = process.memoryUsage().heapUsed;
    // 8 KB messages, 500 per statement, until the stalled subscriber is ended (its socket's kernel buffers fill first).
    let rounds = 0;
    let mostBuffered = 0;
    let total = 0;
    while (server.app.realtime.subscriberCount === 2) {
      rounds += 1;
      if (rounds > 12) throw new Error(`the stalled subscriber was not ended after ${total} messages`);
      total = await insertMessages(admin, conversation.id, 500, 8192);
      await vi.waitFor(
        () => {
          mostBuffered = Math.max(mostBuffered, server.app.realtime.bufferedEvents);
          expect(read, "the last seq the reader has").toBe(total);
        },
        { timeout: 15_000, interval: 10 },
      );
    }
    // Two more rounds after it was ended: nothing piles up for it.
    for (let extra = 0; extra < 2; extra += 1) {
      total = await insertMessages(admin, conversation.id, 500, 8192);
      await vi.waitFor(() => expect(read, "the last seq the reader has").toBe(total), { timeout: 15_000, interval: 10 });
    }
    gc();
    const heapGrowth = process.memoryUsage().heapUsed - heapBefore;
    expect(mostBuffered).toBeLessThanOrEqual(1000);
    // Far less than what went through (over 16 MB), and less than the 1,000 × 8 KB it could hold at most.
    expect(heapGrowth).toBeLessThan(8 * 1024 * 1024);

    // Once it reads again: what its socket held, in order, then the error, then complete.
    stalled.socket.resume();
    const end = await within(stalled.end, 30_000, "the stalled subscriber's end");
    expect(end.seqs).toEqual(end.seqs.map((_, index) => index + 1));
    expect(end.seqs.length).toBeLessThan(total);
    expect(end.errors).toEqual([
      expect.objectContaining({
        message: expect.stringContaining("subscribe again with afterSeq"),
        extensions: expect.objectContaining({ code: "SUBSCRIPTION_OVERFLOW" }),
      }),
    ]);
    expect(end.completed).toBe(true);
    stalled.socket.close();
    reader.dispose();
  });

  it("should end an SSE stream that stops being read with the same SUBSCRIPTION_OVERFLOW result, then complete", async () => {
    const user = await newUser(server);
    const conversation = await newConversation(server.db, user.id);
    const query = `subscription ($id: ID!) { messageAdded(conversationId: $id) { seq content } }`;
    const reader = await live(server, server.connect(user.token), query, { id: conversation.globalId });
    let read = 0;
    void (async () => {
      for (;;) read = ((await reader.next(30_000)).data?.messageAdded as { seq: number }).seq;
    })().catch(() => {});

    // node:http: a paused response stops reading its socket, so the server's writes back up.
    const before = server.app.realtime.establishedCount;
    const response = await new Promise<IncomingMessage>((resolve, reject) => {
      const headers = { accept: "text/event-stream", "content-type": "application/json", authorization: `Bearer ${user.token}` };
      request(server.url, { method: "POST", headers }, resolve)
        .on("error", reject)
        .end(JSON.stringify({ query, variables: { id: conversation.globalId } }));
    });
    response.pause();
    expect(response.statusCode).toBe(200);
    await vi.waitFor(() => expect(server.app.realtime.establishedCount, "established subscriptions").toBe(before + 1), {
      timeout: 15_000,
      interval: 10,
    });

    // Its body is not read until the stream has been ended.
    let total = 0;
    for (let round = 1; server.app.realtime.subscriberCount === 2; round += 1) {
      if (round > 12) throw new Error(`the unread SSE stream was not ended after ${total} messages`);
      total = await insertMessages(admin, conversation.id, 500, 8192);
      await vi.waitFor(() => expect(read, "the last seq the reader has").toBe(total), { timeout: 15_000, interval: 10 });
    }

    const stream = readSse(new Response(Readable.toWeb(response) as ReadableStream<Uint8Array>));
    const seqs: number[] = [];
    for (;;) {
      const result = await stream.next(30_000);
      if (result.errors) {
        expect(result.errors).toEqual([expect.objectContaining({ extensions: expect.objectContaining({ code: "SUBSCRIPTION_OVERFLOW" }) })]);
        break;
      }
      seqs.push((result.data?.messageAdded as { seq: number }).seq);
    }
    expect(seqs).toEqual(seqs.map((_, index) => index + 1));
    await within(stream.ended, 10_000, "the SSE stream completes");
    expect(stream.completed()).toBe(true);
    reader.dispose();
  });
});

/** Inserts `count` messages of `size` characters in one statement, bumping last_seq; returns the new last seq. */
async function insertMessages(admin: pg.Client, conversationId: string, count: number, size: number): Promise<number> {
  const { rows } = await admin.query<{ last: number }>(
    `WITH bumped AS (UPDATE conversations SET last_seq = last_seq + $2 WHERE id = $1::uuid RETURNING user_id, last_seq),
          inserted AS (
            INSERT INTO messages (conversation_id, user_id, role, content, seq)
            SELECT $1::uuid, user_id, 'user', repeat(md5(g::text), $3 / 32), last_seq - $2 + g FROM bumped, generate_series(1, $2) g
          )
     SELECT last_seq AS last FROM bumped`,
    [conversationId, count, size],
  );
  return rows[0]!.last;
}

interface RawEnd {
  seqs: number[];
  errors: unknown;
  completed: boolean;
}

/** A graphql-transport-ws subscription on a bare `ws` socket, which the test can pause like a consumer that stops reading. */
async function rawSubscriber(
  url: string,
  token: string,
  payload: { query: string; variables: Record<string, unknown> },
): Promise<{ socket: WebSocket; end: Promise<RawEnd> }> {
  const socket = new WebSocket(url, "graphql-transport-ws");
  await once(socket, "open");
  const seqs: number[] = [];
  let errors: unknown;
  const end = new Promise<RawEnd>((resolve) => {
    socket.on("message", (data) => {
      const message = JSON.parse(String(data)) as { type: string; payload?: { data?: { messageAdded?: { seq: number } }; errors?: unknown } };
      if (message.type === "next" && message.payload?.errors) errors = message.payload.errors;
      else if (message.type === "next" && message.payload?.data?.messageAdded) seqs.push(message.payload.data.messageAdded.seq);
      else if (message.type === "error") errors = message.payload;
      else if (message.type === "complete") resolve({ seqs, errors, completed: true });
    });
    socket.on("close", () => resolve({ seqs, errors, completed: false }));
  });
  const acked = new Promise<void>((resolve) => socket.once("message", () => resolve()));
  socket.send(JSON.stringify({ type: "connection_init", payload: { authorization: `Bearer ${token}` } }));
  await acked;
  socket.send(JSON.stringify({ id: "1", type: "subscribe", payload }));
  return { socket, end };
}

/** global.gc, made available in this worker. */
function exposeGc(): () => void {
  setFlagsFromString("--expose-gc");
  return runInNewContext("gc") as () => void;
}

describe("the WebSocket keep-alive", () => {
  let server: LiveServer;

  beforeAll(async () => {
    server = await startLiveServer({ ws: { keepAliveMs: 200 } });
  });
  afterAll(async () => {
    await server.close();
  });

  it("should cut a socket that stops reading (and so answering pings) and keep one that reads", async () => {
    const user = await newUser(server);
    const payload = { query: TASK_CHANGED, variables: {} };
    const before = server.app.realtime.establishedCount;
    const reading = await rawSubscriber(server.wsUrl, user.token, payload);
    const paused = await rawSubscriber(server.wsUrl, user.token, payload);
    await vi.waitFor(() => expect(server.app.realtime.establishedCount, "established subscriptions").toBe(before + 2), {
      timeout: 15_000,
      interval: 10,
    });
    paused.socket.pause();

    // Seen from the server: a paused client reads nothing, not even the close.
    await vi.waitFor(() => expect(server.app.ws.connectionsOf(user.id), "the user's sockets").toBe(1), { timeout: 15_000, interval: 20 });
    expect(server.app.realtime.subscriberCount).toBe(1);
    // Two pings later the reading socket has answered both and is still open.
    let pings = 0;
    reading.socket.on("ping", () => (pings += 1));
    await vi.waitFor(() => expect(pings, "pings answered").toBeGreaterThanOrEqual(2), { timeout: 15_000, interval: 20 });
    expect(reading.socket.readyState).toBe(WebSocket.OPEN);
    expect(server.app.ws.connectionsOf(user.id)).toBe(1);
    reading.socket.close();
    paused.socket.resume();
  });
});
