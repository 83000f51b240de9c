import { connect } from "node:net";
import { setTimeout as sleep } from "node:timers/promises";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { developmentHttp, newUser, startTestServer, type TestServer, type TestUser } from "../helpers/server.js";
import { readSse, TASK_CHANGED, type SseReader } from "../realtime/support.js";

/** Short on purpose, so the test needs no wait near Node's defaults (300 s for a request, 60 s for headers). */
const TIMEOUTS = { requestMs: 1000, headersMs: 500, keepAliveMs: 5000 };

/** One byte every 50 ms: 100 bytes would take 5 s, five times REQUEST_TIMEOUT_MS here. */
const TRICKLE_EVERY_MS = 50;

interface Trickled {
  /** What the server wrote back. */
  response: string;
  /** Whether the server closed the connection. */
  closed: boolean;
  /** Bytes of `slowly` written before it did. */
  sent: number;
}

/**
 * Sends `head` at once, then `slowly` a byte at a time, as a slowloris client does;
 * stops when the server closes the connection, and otherwise waits up to `graceMs` after the last byte.
 */
async function trickle(port: number, head: string, slowly: string, graceMs = 3000): Promise<Trickled> {
  const socket = connect(port, "127.0.0.1");
  let response = "";
  let closed = false;
  socket.setEncoding("utf8").on("data", (chunk: string) => void (response += chunk));
  socket.on("error", () => {});
  const ended = new Promise<void>((resolve) => socket.once("close", () => resolve()));
  void ended.then(() => (closed = true));
  socket.write(head);
  let sent = 0;
  for (const byte of slowly) {
    if (closed) break;
    await sleep(TRICKLE_EVERY_MS);
    if (!socket.writable) break;
    socket.write(byte);
    sent += 1;
  }
  await Promise.race([ended, sleep(graceMs)]);
  socket.destroy();
  return { response, closed, sent };
}

describe("a request that trickles in", () => {
  let server: TestServer;
  let user: TestUser;
  let port: number;
  const streams: SseReader[] = [];

  beforeAll(async () => {
    server = await startTestServer({ http: developmentHttp({ timeouts: TIMEOUTS }) });
    user = await newUser(server, "slow-request");
    port = Number(new URL(server.baseUrl).port);
  });
  afterAll(async () => {
    await Promise.all(streams.map((stream) => stream.cancel()));
    await server?.close();
  });

  it("should get 408 and a closed connection when its body is not in by REQUEST_TIMEOUT_MS", async () => {
    const body = JSON.stringify({ query: `{ tasks { edges { node { id } } } }`, variables: { pad: "x".repeat(60) } });
    const head =
      `POST /graphql HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nAuthorization: Bearer ${user.token}\r\n` +
      `Content-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n`;
    const outcome = await trickle(port, head, body);
    expect(outcome.closed, `the server still waited after ${outcome.sent} of ${body.length} bytes`).toBe(true);
    expect(outcome.response).toMatch(/^HTTP\/1\.1 408 /);
    expect(outcome.sent).toBeLessThan(body.length);
  });

  it("should get 408 and a closed connection when its headers are not in by HEADERS_TIMEOUT_MS", async () => {
    const head = `POST /graphql HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nAuthorization: Bearer ${user.token}\r\n`;
    const headers = `Content-Type: application/json\r\nX-Padding: ${"p".repeat(60)}\r\n\r\n`;
    const outcome = await trickle(port, head, headers);
    expect(outcome.closed, `the server still waited after ${outcome.sent} of ${headers.length} header bytes`).toBe(true);
    expect(outcome.response).toMatch(/^HTTP\/1\.1 408 /);
    expect(outcome.sent).toBeLessThan(headers.length);
  });

  it("should not cut what is only slow to answer: an SSE stream open past the timeouts still delivers", async () => {
    const before = server.app.realtime.establishedCount;
    const response = await fetch(server.url, {
      method: "POST",
      headers: { accept: "text/event-stream", "content-type": "application/json", authorization: `Bearer ${user.token}` },
      body: JSON.stringify({ query: TASK_CHANGED }),
    });
    const stream = readSse(response);
    streams.push(stream);
    await vi.waitFor(() => expect(server.app.realtime.establishedCount, "established subscriptions").toBeGreaterThan(before), {
      timeout: 10_000,
      interval: 10,
    });
    // Longer than both timeouts and a few checking intervals.
    await sleep(TIMEOUTS.requestMs * 2.5);
    await user.gql(`mutation { addTask(input: { title: "after the timeouts" }) { id } }`);
    expect(await stream.next()).toMatchObject({ data: { taskChanged: { kind: "CREATED", task: { title: "after the timeouts" } } } });
  });

  it("should still answer a request sent at a normal pace", async () => {
    const answer = await user.gql(`{ tasks(first: 1) { edges { node { id } } } }`);
    expect(answer.status).toBe(200);
    expect(answer.errors).toBeUndefined();
  });
});
