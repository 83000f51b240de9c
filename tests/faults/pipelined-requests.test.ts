import { connect } from "node:net";
import { setTimeout as sleep } from "node:timers/promises";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import pg from "pg";
import type { Db } from "../../src/db/client.js";
import { MAX_PIPELINED_REQUESTS } from "../../src/server/front-door.js";
import { parseId } from "../../src/lib/ids.js";
import { databaseUrl, testDb } from "../helpers/db.js";
import { newUser, startTestServer, type TestServer, type TestUser } from "../helpers/server.js";

const BODY = JSON.stringify({ query: "{ __typename }" });

/** `count` copies of POST /graphql in one buffer, as a pipelining client writes them. */
function pipelined(port: number, count: number, token: string | undefined, body = BODY): string {
  const auth = token === undefined ? "" : `Authorization: Bearer ${token}\r\n`;
  const one =
    `POST /graphql HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\n${auth}` +
    `Content-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`;
  return one.repeat(count);
}

/** Writes the burst on one connection and closes it after `closeAfterMs`, whatever has been answered by then. */
async function burstAndHangUp(port: number, burst: string, closeAfterMs: number): Promise<void> {
  const socket = connect(port, "127.0.0.1");
  socket.on("error", () => {});
  socket.resume();
  await new Promise<void>((resolve) => socket.once("connect", () => resolve()));
  socket.write(burst);
  await sleep(closeAfterMs);
  socket.destroy();
}

/** Writes the burst and reads every answer until the server closes the connection (or `timeoutMs` passes). */
async function burstAndRead(port: number, burst: string, timeoutMs = 15_000): Promise<{ statuses: number[]; text: string; closed: boolean }> {
  const socket = connect(port, "127.0.0.1");
  let text = "";
  socket.setEncoding("utf8").on("data", (chunk: string) => void (text += chunk));
  socket.on("error", () => {});
  const closed = new Promise<boolean>((resolve) => socket.once("close", () => resolve(true)));
  socket.write(burst);
  const ended = await Promise.race([closed, sleep(timeoutMs).then(() => false)]);
  socket.destroy();
  const statuses = [...text.matchAll(/HTTP\/1\.1 (\d{3}) /g)].map((match) => Number(match[1]));
  return { statuses, text, closed: ended };
}

describe("pipelined HTTP requests", () => {
  let db: Db;
  let server: TestServer;
  let user: TestUser;
  let port: number;
  let holder: pg.Client;

  beforeAll(async () => {
    // Requests queued for a pool connection wait long enough for the test to release the lock.
    db = testDb({ poolSize: 5, connectionTimeoutMs: 20_000 });
    server = await startTestServer({ db, shutdownGraceMs: 5000 });
    user = await newUser(server, "pipelined");
    port = Number(new URL(server.baseUrl).port);
    holder = new pg.Client({ connectionString: databaseUrl() });
    await holder.connect();
  });
  afterAll(async () => {
    await holder?.end();
    await server?.close();
    await db?.$disconnect();
  });

  it("should count every request of a burst out again when its connection closes, with or without a token", async () => {
    for (const token of [user.token, undefined]) {
      await burstAndHangUp(port, pipelined(port, 200, token), 20);
      // A timeout shows what is left behind.
      await vi.waitFor(
        () => expect(server.app.requestsInFlight(), token === undefined ? "in flight, without a token" : "in flight, with a token").toBe(0),
        {
          timeout: 10_000,
          interval: 20,
        },
      );
    }
  });

  it(`should run at most ${MAX_PIPELINED_REQUESTS} of one connection, refuse the next with a retryable 503, then close it`, async () => {
    const added = await user.gql<{ addTask: { id: string } }>(`mutation { addTask(input: { title: "pipelined" }) { id } }`);
    const id = added.data!.addTask.id;
    const complete = JSON.stringify({ query: `mutation ($id: ID!) { completeTask(id: $id) { completed } }`, variables: { id } });
    const count = MAX_PIPELINED_REQUESTS + 8;
    // Every request that runs waits on this lock (or for a pool connection behind those that do), so all are in flight at once.
    await holder.query("BEGIN");
    await holder.query("SELECT id FROM tasks WHERE id = $1 FOR UPDATE", [parseId(id, "id", "Task")]);
    const reading = burstAndRead(port, pipelined(port, count, user.token, complete));
    try {
      await vi.waitFor(() => expect(server.app.requestsInFlight(), "requests in flight").toBeGreaterThanOrEqual(count), {
        timeout: 10_000,
        interval: 20,
      });
    } finally {
      await holder.query("ROLLBACK");
    }
    const { statuses, text, closed } = await reading;
    expect(statuses).toEqual([...Array<number>(MAX_PIPELINED_REQUESTS).fill(200), 503]);
    expect(closed).toBe(true);
    expect(text).toContain('"code":"SERVICE_UNAVAILABLE"');
    expect(text).toContain('"retryable":true');
    expect(text.toLowerCase()).toContain("connection: close");
    await vi.waitFor(() => expect(server.app.requestsInFlight(), "requests in flight").toBe(0), { timeout: 10_000, interval: 20 });
  });

  it("should keep serving other connections, and drain at once on stop()", async () => {
    const answer = await user.gql("{ __typename }");
    expect(answer.data).toEqual({ __typename: "Query" });
    await burstAndHangUp(port, pipelined(port, 200, user.token), 20);
    expect(await server.app.stop()).toBe(true);
  });
});
