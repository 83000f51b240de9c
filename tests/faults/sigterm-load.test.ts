import { setTimeout as sleep } from "node:timers/promises";
import { randomUUID } from "node:crypto";
import { request } from "node:http";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import type { Db } from "../../src/db/client.js";
import { parseId } from "../../src/lib/ids.js";
import { cohereAssistant } from "../helpers/chat.js";
import { databaseUrl, newUserId, testDb } from "../helpers/db.js";
import { startFakeCohere, textReply, type FakeCohere } from "../helpers/fake-cohere.js";
import { lines, runScript, stopAll, type Program } from "../helpers/process.js";
import { startTestServer, type TestServer } from "../helpers/server.js";
import { TEST_JWT_SECRET, tokenFor } from "../helpers/tokens.js";
import { wsClient, type TestWsClient } from "../helpers/ws-client.js";
import { deferred, SEND_LIVE, type LivePayload } from "../chat/support.js";
import { readSse, TASK_CHANGED, within } from "../realtime/support.js";
import { INTERNALS } from "./support.js";

/** What became of one HTTP request. */
type Outcome =
  | { kind: "answered"; status: number; body: string; startedAt: number; endedAt: number }
  /** The connection was refused, or reset before any answer began: the request was never accepted. */
  | { kind: "refused"; code: string; startedAt: number }
  /** An answer that began and did not finish: never allowed. */
  | { kind: "cut"; status: number; error: string; startedAt: number };

/** One POST on a connection of its own (no keep-alive), so each request's fate is its own. */
function post(url: string, token: string, query: string, variables?: Record<string, unknown>): Promise<Outcome> {
  const startedAt = performance.now();
  return new Promise((resolve) => {
    const req = request(url, {
      method: "POST",
      agent: false,
      headers: { "content-type": "application/json", authorization: `Bearer ${token}` },
    });
    let answered = false;
    req.on("response", (res) => {
      answered = true;
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (chunk: string) => void (body += chunk));
      res.on("end", () => resolve({ kind: "answered", status: res.statusCode ?? 0, body, startedAt, endedAt: performance.now() }));
      res.on("aborted", () => resolve({ kind: "cut", status: res.statusCode ?? 0, error: "aborted", startedAt }));
      res.on("error", (error) => resolve({ kind: "cut", status: res.statusCode ?? 0, error: String(error), startedAt }));
    });
    req.on("error", (error: NodeJS.ErrnoException) => {
      if (!answered) resolve({ kind: "refused", code: error.code ?? error.message, startedAt });
    });
    req.end(JSON.stringify({ query, variables }));
  });
}

const HELD = "held past the grace period";
const GRACE_MS = 3000;

/**
 * `npm start`'s entry point as a real process, on the run's database, under
 * HTTP load, graphql-ws and SSE subscribers, a request waiting on a row lock
 * and a sendMessage whose model stream is held open past SHUTDOWN_GRACE_MS,
 * when SIGTERM arrives. A second instance (in this process) then takes the
 * retry of the cut turn.
 */
describe("SIGTERM under load", () => {
  const started: Program[] = [];
  const clients: TestWsClient[] = [];
  const appName = `sigterm-${randomUUID()}`;
  let fake: FakeCohere;
  let db: Db;
  let second: TestServer | undefined;
  let holder: pg.Client;
  let watcher: pg.Client;
  const release = deferred();
  /** Only the first instance's model call is held; the retry's is answered. */
  let holding = true;

  beforeAll(async () => {
    db = testDb();
    fake = await startFakeCohere();
    fake.setFallback((request) => {
      const last = request.body.messages.at(-1) as { content?: unknown } | undefined;
      // Held until the test ends: far past the grace period.
      if (last?.content === HELD && holding)
        return textReply("This answer never gets to its end.", { gate: { afterDeltas: 2, until: release.promise } });
      return textReply("A quick answer.");
    });
    holder = new pg.Client({ connectionString: databaseUrl() });
    await holder.connect();
    watcher = new pg.Client({ connectionString: databaseUrl() });
    await watcher.connect();
  });
  afterAll(async () => {
    release.resolve();
    await Promise.all(clients.map((client) => client.dispose()));
    await stopAll(started);
    await second?.close();
    await holder?.query("ROLLBACK").catch(() => {});
    await holder?.end();
    await watcher?.end();
    await fake?.close();
    await db?.$disconnect();
  });

  it("should finish accepted requests, refuse new ones, close sockets with 1001, exit 0, and hand the cut turn to another instance at once", async () => {
    const url = new URL(databaseUrl());
    // So the test can tell this process's connections from the rest of the run's.
    url.searchParams.set("application_name", appName);
    const program = runScript(
      "src/main.ts",
      {
        env: {
          PORT: "0",
          LOG_LEVEL: "info",
          DATABASE_URL: url.toString(),
          AUTH_JWT_SECRET: TEST_JWT_SECRET,
          COHERE_API_KEY: "test-key",
          COHERE_BASE_URL: fake.baseUrl,
          SHUTDOWN_GRACE_MS: String(GRACE_MS),
          CHAT_RATE_LIMIT: "0",
        },
      },
      started,
    );
    const [, endpoint] = await program.waitFor(/GraphQL API ready at (http:\/\/\S+\/graphql)"/, 60_000);
    const graphqlUrl = endpoint!;
    const baseUrl = graphqlUrl.replace(/\/graphql$/, "");
    const wsUrl = graphqlUrl.replace(/^http/, "ws");
    const userId = newUserId("sigterm");
    const token = await tokenFor(userId);

    // Subscribers: three graphql-ws sockets and one SSE stream, each shown to be live.
    const subs = Array.from({ length: 3 }, () => {
      const client = wsClient(wsUrl, token);
      clients.push(client);
      return client.subscribe(TASK_CHANGED);
    });
    const sse = readSse(
      await fetch(graphqlUrl, {
        method: "POST",
        headers: { accept: "text/event-stream", "content-type": "application/json", authorization: `Bearer ${token}` },
        body: JSON.stringify({ query: TASK_CHANGED }),
      }),
    );
    // Subscriptions start asynchronously: add tasks until every subscriber has seen one.
    let sseLive = false;
    void sse.next(60_000).then(() => (sseLive = true));
    let firstTask: string | undefined;
    await vi.waitFor(
      async () => {
        const added = await post(graphqlUrl, token, `mutation { addTask(input: { title: "warm-up" }) { id } }`);
        if (added.kind === "answered") firstTask ??= (JSON.parse(added.body) as { data: { addTask: { id: string } } }).data.addTask.id;
        await sleep(100);
        expect(subs.filter((sub) => sub.pending().length === 0).length, "graphql-ws subscribers with no event yet").toBe(0);
        expect(sseLive, "the SSE subscriber has an event").toBe(true);
      },
      { timeout: 20_000, interval: 20 },
    );

    // An accepted request that waits on a row lock through the signal.
    await holder.query("BEGIN");
    await holder.query("SELECT id FROM tasks WHERE id = $1 FOR UPDATE", [parseId(firstTask!, "id", "Task")]);
    const locked = post(graphqlUrl, token, `mutation ($id: ID!) { completeTask(id: $id) { id completed } }`, { id: firstTask });
    await vi.waitFor(
      async () => {
        const { rows } = await watcher.query<{ n: number }>(
          "SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name = $1 AND wait_event_type = 'Lock'",
          [appName],
        );
        expect(rows[0]?.n, "connections waiting on the lock").toBe(1);
      },
      { timeout: 20_000, interval: 20 },
    );

    // A turn whose model stream is held open past the grace period, with its client waiting for the reply.
    const clientMessageId = `cm-${randomUUID()}`;
    const heldSend = post(graphqlUrl, token, SEND_LIVE, { input: { content: HELD, clientMessageId } });
    await vi.waitFor(
      () =>
        expect(
          Math.max(0, ...fake.requests.map((request) => request.sent.filter((event) => event.type === "content-delta").length)),
          "deltas of the held answer",
        ).toBeGreaterThanOrEqual(2),
      { timeout: 20_000, interval: 20 },
    );

    // Load: reads and writes on connections of their own, through the signal and after the exit.
    const outcomes: Outcome[] = [];
    let loading = true;
    const loop = async (query: string) => {
      while (loading) {
        const outcome = await post(graphqlUrl, token, query);
        outcomes.push(outcome);
        // Told to retry later (or refused): a client waits a little first.
        if (outcome.kind !== "answered" || outcome.status !== 200) await sleep(50);
      }
    };
    const loops = [
      loop(`{ tasks(first: 10) { edges { node { id title } } } }`),
      loop(`{ tasks(first: 10) { edges { node { id title } } } }`),
      loop(`mutation { addTask(input: { title: "under load" }) { id title } }`),
      loop(`mutation { addTask(input: { title: "under load" }) { id title } }`),
    ];
    await vi.waitFor(
      () => expect(outcomes.filter((outcome) => outcome.kind === "answered").length, "answered load requests").toBeGreaterThanOrEqual(8),
      {
        timeout: 20_000,
        interval: 20,
      },
    );

    const signalAt = performance.now();
    program.child.kill("SIGTERM");

    // At once: not ready, new requests and sockets refused.
    // (The signal is handled asynchronously: the first answers may still be 200.)
    await vi.waitFor(async () => expect((await fetch(`${baseUrl}/ready`)).status, "/ready").toBe(503), { timeout: 20_000, interval: 20 });
    const fresh = await post(graphqlUrl, token, "{ tasks(first: 1) { edges { node { id } } } }");
    expect(fresh).toMatchObject({ kind: "answered", status: 503 });
    expect(JSON.parse((fresh as { body: string }).body).errors[0].extensions).toEqual({ code: "SERVICE_UNAVAILABLE", retryable: true });
    const closes = await Promise.all(clients.map((client) => within(client.closed, 10_000, "the WebSocket close")));
    expect(closes.map((close) => close.code)).toEqual([1001, 1001, 1001]);
    await within(sse.ended, 10_000, "the SSE stream to end");
    expect(sse.completed()).toBe(true);

    // The lock goes within the grace period: the accepted request gets its whole answer.
    await holder.query("ROLLBACK");
    const lockedOutcome = await locked;
    expect(lockedOutcome).toMatchObject({ kind: "answered", status: 200 });
    expect(JSON.parse((lockedOutcome as { body: string }).body)).toEqual({ data: { completeTask: { id: firstTask, completed: true } } });

    // The held turn outlives the grace period: its client is told, in a whole answer, to retry.
    const heldOutcome = await heldSend;
    expect(heldOutcome.kind).toBe("answered");
    const heldBody = JSON.parse((heldOutcome as { body: string }).body) as { errors?: { extensions?: Record<string, unknown> }[] };
    expect(heldBody.errors?.[0]?.extensions).toMatchObject({ code: "ASSISTANT_UNAVAILABLE", retryable: true });

    expect(await program.exit(30_000)).toEqual({ code: 0, signal: null });
    await vi.waitFor(
      () =>
        expect(
          outcomes.filter((outcome) => outcome.kind === "refused" && outcome.startedAt > signalAt).length,
          "requests refused after the exit",
        ).toBeGreaterThan(0),
      { timeout: 20_000, interval: 20 },
    );
    loading = false;
    await Promise.all(loops);

    // Every load request: a whole 200, or (after the signal) refused with 503 or at the connection.
    let answeredOk = 0;
    let refused = 0;
    for (const outcome of outcomes) {
      if (outcome.kind === "cut") throw new Error(`an answer was cut: ${JSON.stringify(outcome)}`);
      if (outcome.kind === "refused") {
        expect(outcome.startedAt).toBeGreaterThan(signalAt);
        expect(["ECONNREFUSED", "ECONNRESET"]).toContain(outcome.code);
        refused += 1;
        continue;
      }
      expect(outcome.body).not.toMatch(INTERNALS);
      const body = JSON.parse(outcome.body) as { data?: unknown; errors?: { extensions?: Record<string, unknown> }[] };
      if (outcome.status === 200) {
        expect(body.errors).toBeUndefined();
        expect(body.data).toBeTruthy();
        answeredOk += 1;
        continue;
      }
      expect(outcome.status).toBe(503);
      // Refused by the drain, so answered after the signal. (It may have been sent a moment
      // before: until the server has read a request, it has not accepted it.)
      expect(outcome.endedAt).toBeGreaterThan(signalAt);
      expect(body.errors?.[0]?.extensions).toEqual({ code: "SERVICE_UNAVAILABLE", retryable: true });
      refused += 1;
    }

    // An expected shutdown logs nothing at error level (the grace period's end is a warning).
    const logged = lines(program.stdout()).filter((line) => line.startsWith("{"));
    expect(logged.filter((line) => (JSON.parse(line) as { level: number }).level >= 50)).toEqual([]);
    expect(program.stderr()).toBe("");

    // The cut turn was ended as interrupted and its lease handed back before the process exited…
    const userMessage = await db.message.findFirstOrThrow({ where: { userId, clientMessageId } });
    const turn = await db.turn.findFirstOrThrow({ where: { userMessageId: userMessage.id } });
    expect(turn).toMatchObject({ status: "FAILED", stopCode: "INTERRUPTED" });
    const conversation = await db.conversation.findUniqueOrThrow({ where: { id: userMessage.conversationId } });
    expect(conversation.turnLeaseId).toBeNull();
    expect(await db.message.count({ where: { conversationId: conversation.id, status: "STREAMING" } })).toBe(0);

    // …so a retry on another instance resumes it at once, with the same user message and turn.
    holding = false;
    second = await startTestServer({ assistant: cohereAssistant(fake) });
    const retry = await second.request<{ sendMessage: LivePayload }>(SEND_LIVE, { input: { content: HELD, clientMessageId } }, token);
    expect(retry.errors).toBeUndefined();
    expect(parseId(retry.data!.sendMessage.turn.id, "id", "Turn")).toBe(turn.id);
    expect(retry.data!.sendMessage.turn.status).toBe("COMPLETED");
    expect(retry.data!.sendMessage.reply?.content).toBe("A quick answer.");
    expect(await db.message.count({ where: { userId, clientMessageId } })).toBe(1);

    if (process.env.FAULT_FIGURES) {
      console.log(
        `sigterm-load ${JSON.stringify({ requests: outcomes.length + 3, answeredOk, refused, wsClosed1001: closes.length, sse: 1, heldPastGrace: 1, resumed: 1 })}`,
      );
    }
  }, 120_000);
});
