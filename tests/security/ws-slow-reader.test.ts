import type { Socket } from "node:net";
import type { Duplex } from "node:stream";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { newUser, startTestServer, type TestServer, type TestUser } from "../helpers/server.js";
import { openRawOrFail, type RawSocket, type ServerMessage } from "../helpers/raw-ws.js";
import { TASK_CHANGED } from "../realtime/support.js";

const TASK_COUNT = 100;
/** 15 aliases (GRAPHQL_MAX_ALIASES) of a page of 100 tasks with 200-character titles and 1,000-character descriptions: about 2 MB of result. */
const BIG_QUERY = `{ ${Array.from({ length: 15 }, (_, i) => `a${i}: tasks(first: 100) { edges { node { id title description completed createdAt updatedAt } } }`).join(" ")} }`;
const ONE_PAGE = `{ tasks(first: 100) { edges { node { id title } } } }`;
/** Bounded in count: enough to pin about 80 MB on a socket that reads nothing, were nothing bounded. */
const OPERATIONS = 40;
/** The documented defaults of WS_MAX_BUFFERED_BYTES and WS_OPERATIONS_PER_SOCKET. */
const MAX_BUFFERED_BYTES = 8 * 1024 * 1024;
const OPERATIONS_PER_SOCKET = 16;

/**
 * Finding 1 of issue 20: graphql-ws `subscribe` messages carrying queries,
 * on a socket that never reads, piled their results up in the socket's send
 * buffer without bound (+548 MB of RSS after 100 of them). What one socket may
 * leave unread is now WS_MAX_BUFFERED_BYTES (then 4413), queries and mutations
 * in flight per socket are WS_OPERATIONS_PER_SOCKET (then RATE_LIMITED), and
 * a closed socket lets go of everything it held.
 */
describe("a graphql-ws socket that stops reading", () => {
  let server: TestServer;
  let user: TestUser;

  beforeAll(async () => {
    // The paused socket cannot answer pings either. With the 12 s default, on a loaded machine
    // the keep-alive cut it before its unread output reached the cap (no 4413, closedSendBufferFull
    // 0); a 100 ms keep-alive does so every time. What ends it here must be the buffer bound, so
    // the keep-alive (tests/realtime/limits.test.ts has its own case) is out of the way.
    server = await startTestServer({ ws: { keepAliveMs: 3_600_000 } });
    user = await newUser(server, "ws-slow-reader");
    await server.db.task.createMany({
      data: Array.from({ length: TASK_COUNT }, (_, i) => ({
        userId: user.id,
        title: `${i} ${"t".repeat(200)}`.slice(0, 200),
        description: `${i} ${"d".repeat(1000)}`.slice(0, 1000),
      })),
    });
  });
  afterAll(async () => {
    await server?.close();
  });

  it("should close it with 4413 once its unread output passes WS_MAX_BUFFERED_BYTES, never holding more, and free what it held", async () => {
    const cap = MAX_BUFFERED_BYTES;
    const overHttp = await user.gql(BIG_QUERY);
    expect(overHttp.errors).toBeUndefined();
    const resultBytes = Buffer.byteLength(JSON.stringify(overHttp.data));
    expect(resultBytes).toBeGreaterThan(1.5 * 1024 * 1024);

    const serverSide = captureNextUpgradeSocket(server);
    const raw = await openRawOrFail(server.wsUrl);
    expect(await raw.init(user.token)).toBe("ack");
    const subscribersBefore = server.app.realtime.subscriberCount;
    raw.send({ id: "live", type: "subscribe", payload: { query: TASK_CHANGED } });
    await vi.waitFor(() => expect(server.app.realtime.subscriberCount, "subscribers").toBe(subscribersBefore + 1), { timeout: 15_000, interval: 10 });

    raw.socket.pause();
    for (let i = 0; i < OPERATIONS; i += 1) raw.send({ id: `q${i}`, type: "subscribe", payload: { query: BIG_QUERY } });
    const socket = await serverSide;
    // Node's own count of what the server's socket holds unsent, sampled until the server gives up on it.
    let peak = 0;
    await vi.waitFor(
      () => {
        peak = Math.max(peak, socket.writableLength);
        const given = server.app.ws?.stats().closedSendBufferFull === 1 || socket.destroyed || peak > 4 * cap;
        expect(given, "the server closed the socket, or its buffer passed four times the cap").toBe(true);
      },
      { timeout: 30_000, interval: 10 },
    );
    expect(peak).toBeLessThanOrEqual(cap);
    expect(server.app.ws.stats().peakBufferedBytes).toBeLessThanOrEqual(cap);
    expect(server.app.ws.stats().closedSendBufferFull).toBe(1);
    // Read now, within the closing handshake's time: what the socket held, then the close frame.
    raw.socket.resume();
    const closed = await raw.closed;
    expect(closed).toEqual({ code: 4413, reason: "Send buffer full: the client is not reading" });

    // Freed: the subscription's iterator returned, no operation running, the socket's seat and buffers gone.
    await vi.waitFor(() => expect(server.app.realtime.subscriberCount, "subscribers").toBe(subscribersBefore), { timeout: 15_000, interval: 10 });
    await vi.waitFor(() => expect(server.app.ws.stats().operationsInFlight, "operations in flight").toBe(0), { timeout: 15_000, interval: 10 });
    expect(server.app.ws.stats()).toMatchObject({ connections: 0, bufferedBytes: 0, operationsInFlight: 0 });
    expect(socket.destroyed).toBe(true);
    // The server is fine for everyone else.
    expect((await user.gql(ONE_PAGE)).errors).toBeUndefined();
  });

  it("should answer queries past WS_OPERATIONS_PER_SOCKET in flight on one socket with RATE_LIMITED, and run the rest", async () => {
    const limit = OPERATIONS_PER_SOCKET;
    const raw = await openRawOrFail(server.wsUrl);
    expect(await raw.init(user.token)).toBe("ack");
    for (let i = 0; i < OPERATIONS; i += 1) raw.send({ id: `q${i}`, type: "subscribe", payload: { query: ONE_PAGE } });
    await vi.waitFor(() => expect(answered(raw.messages), "operations answered").toBe(OPERATIONS), { timeout: 15_000, interval: 10 });

    const results = raw.messages.filter((m) => m.type === "next");
    const refusals = raw.messages.filter((m) => m.type === "error");
    expect(results).toHaveLength(limit);
    for (const result of results) expect((result.payload?.data?.tasks as { edges: unknown[] }).edges).toHaveLength(TASK_COUNT);
    expect(refusals).toHaveLength(OPERATIONS - limit);
    for (const refusal of refusals) {
      expect(refusal.payload).toEqual([
        {
          message: `Too many operations in flight on this connection: at most ${limit} queries and mutations at once (WS_OPERATIONS_PER_SOCKET); wait for one to finish`,
          extensions: { code: "RATE_LIMITED", limit },
        },
      ]);
    }
    // Room again once they have finished.
    raw.send({ id: "after", type: "subscribe", payload: { query: ONE_PAGE } });
    await vi.waitFor(
      () =>
        expect(
          raw.messages.map((m) => `${m.id}:${m.type}`),
          "messages on the socket",
        ).toContain("after:complete"),
      { timeout: 15_000, interval: 10 },
    );
    expect(raw.messages.find((m) => m.id === "after")?.type).toBe("next");
    raw.socket.close();
    await vi.waitFor(() => expect(server.app.ws.stats().connections, "connections").toBe(0), { timeout: 15_000, interval: 10 });
  });
});

/** Operations that got their last message: `complete` after a result, or an `error`. */
function answered(messages: ServerMessage[]): number {
  return messages.filter((m) => m.type === "complete" || m.type === "error").length;
}

/** The server's end of the next WebSocket upgrade: its net.Socket, whose writableLength is what it holds unsent. */
function captureNextUpgradeSocket(server: TestServer): Promise<Socket> {
  return new Promise((resolve) => server.app.server.once("upgrade", (_request, socket: Duplex) => resolve(socket as Socket)));
}
