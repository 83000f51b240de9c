import { randomUUID } from "node:crypto";
import { Client, fetchExchange, subscriptionExchange, type OperationResult } from "@urql/core";
import { createClient as createWsClient, type Client as WsClient } from "graphql-ws";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { WebSocket } from "ws";
import { parseId, toGlobalId } from "../../src/lib/ids.js";
import { startFakeCohere, textReply, toolCallReply, wordChunks, type FakeCohere } from "../helpers/fake-cohere.js";
import type pg from "pg";
import { cohereAssistant } from "../helpers/chat.js";
import { databaseUrl } from "../helpers/db.js";
import { newUser, startTestServer, type TestServer, type TestUser } from "../helpers/server.js";
import { wsClient, type TestWsClient } from "../helpers/ws-client.js";
import { adminClient, killListener, MESSAGE_ADDED, readSse, within, type SseReader } from "../realtime/support.js";
import { startTcpGate, type TcpGate } from "../helpers/tcp-gate.js";
import {
  ACTIVE_TURN,
  deferred,
  eventsUntilSettled,
  joined,
  liveStream,
  nextStreamEvent,
  SEND_LIVE,
  twoInstances,
  type LivePayload,
  type StreamEventView,
} from "./support.js";

const ANSWER =
  "Here is your plan for today: first, buy milk and eggs at the corner shop; then call mom about Sunday; " +
  "after lunch, finish the report draft and send it to Ana; finally, water the plants. Good luck — you’ve got this 💪!";

describe("streamed answers", () => {
  let fake: FakeCohere;
  /** `a` runs the turns; `b` is another instance on the same database. */
  let a: TestServer;
  let b: TestServer;
  const clients: TestWsClient[] = [];
  const closers: (() => Promise<unknown>)[] = [];

  function connect(server: TestServer, user: TestUser): TestWsClient {
    const client = wsClient(server.wsUrl, user.token);
    clients.push(client);
    return client;
  }

  async function newConversationOf(user: TestUser): Promise<string> {
    const created = await user.gql<{ createConversation: { id: string } }>(`mutation { createConversation { id } }`);
    return created.data!.createConversation.id;
  }

  function send(server: TestServer, user: TestUser, input: Record<string, unknown>): Promise<LivePayload> {
    return server.request<{ sendMessage: LivePayload }>(SEND_LIVE, { input }, user.token).then((response) => {
      expect(response.errors).toBeUndefined();
      return response.data!.sendMessage;
    });
  }

  beforeAll(async () => {
    fake = await startFakeCohere();
    [a, b] = await twoInstances(fake);
  });
  afterAll(async () => {
    await Promise.all(closers.map((close) => close()));
    await Promise.all(clients.map((client) => client.dispose()));
    await a.close();
    await b.close();
    await fake.close();
  });

  it("should write the answer into a STREAMING row as it streams, deliver its deltas in order to another instance, and settle it COMPLETE", async () => {
    const user = await newUser(a);
    const conversationId = await newConversationOf(user);
    const client = connect(b, user);
    const stream = await liveStream(b, client, conversationId);
    const beforeAdded = b.app.realtime.establishedCount;
    const added = client.subscribe(MESSAGE_ADDED, { conversationId });
    await vi.waitFor(() => expect(b.app.realtime.establishedCount, "established subscriptions").toBeGreaterThan(beforeAdded), {
      timeout: 10_000,
      interval: 10,
    });

    const chunks = wordChunks(ANSWER);
    const gate = deferred();
    const half = Math.floor(chunks.length / 2);
    fake.enqueue(textReply(ANSWER, { chunks, eventDelayMs: 5, gate: { afterDeltas: half, until: gate.promise } }));
    const started = await send(a, user, { conversationId, content: "plan my day", waitForReply: false });
    expect(started.turn.status).toBe("RUNNING");
    expect(started.reply).toBeNull();

    // Mid-stream: the row holds exactly what the model sent so far, and is STREAMING.
    const prefix = chunks.slice(0, half).join("");
    const row = await vi.waitFor(
      async () => {
        const message = await a.db.message.findFirst({ where: { userId: user.id, role: "assistant" } });
        expect(message?.content, "the answer written so far").toBe(prefix);
        return message;
      },
      { timeout: 15_000, interval: 20 },
    );
    expect(row!.status).toBe("STREAMING");
    const running = await user.gql(ACTIVE_TURN, { id: conversationId });
    expect(running.data?.conversation.activeTurn).toEqual({ id: started.turn.id, status: "RUNNING" });
    const early: StreamEventView[] = [];
    while (joined(early).length < prefix.length) early.push(await nextStreamEvent(stream));
    expect(joined(early)).toBe(prefix);
    expect(early.every((event) => event.message.status === "STREAMING")).toBe(true);
    // messageAdded has the user message only: the answer is not settled.
    expect((await added.next()).data?.messageAdded).toMatchObject({ role: "USER", content: "plan my day" });
    expect(added.pending()).toEqual([]);

    gate.resolve();
    const rest = await eventsUntilSettled(stream);
    const events = [...early, ...rest];
    const last = events.at(-1)!;
    expect(last.message.status).toBe("COMPLETE");
    expect(joined(events)).toBe(ANSWER);
    expect(last.message.content).toBe(ANSWER);
    expect(new Set(events.map((event) => event.message.id)).size).toBe(1);
    // Coalesced: far fewer events than the model sent deltas.
    expect(events.length).toBeLessThan(chunks.length / 2);

    const stored = await a.db.message.findUniqueOrThrow({ where: { id: row!.id } });
    expect(stored).toMatchObject({ status: "COMPLETE", content: ANSWER });
    const settled = (await added.next()).data?.messageAdded;
    expect(settled).toMatchObject({ id: last.message.id, role: "ASSISTANT", content: ANSWER });
    const idle = await vi.waitFor(
      async () => {
        const response = await user.gql(ACTIVE_TURN, { id: conversationId });
        expect(response.data?.conversation.activeTurn, "the active turn").toBeNull();
        return response;
      },
      { timeout: 15_000, interval: 20 },
    );
    expect(idle.errors).toBeUndefined();
    added.dispose();
    stream.dispose();
  });

  it("should give a subscriber that joins mid-answer on another instance the text so far at offset 0, then the rest with no gap or overlap", async () => {
    const user = await newUser(a);
    const conversationId = await newConversationOf(user);
    const chunks = wordChunks(ANSWER);
    const gate = deferred();
    fake.enqueue(textReply(ANSWER, { chunks, eventDelayMs: 2, gate: { afterDeltas: 9, until: gate.promise } }));
    const started = await send(a, user, { conversationId, content: "plan it", waitForReply: false });
    const prefix = chunks.slice(0, 9).join("");
    await vi.waitFor(
      async () => {
        const message = await a.db.message.findFirst({ where: { userId: user.id, role: "assistant" } });
        expect(message?.content, "the answer written so far").toBe(prefix);
      },
      { timeout: 15_000, interval: 20 },
    );

    const stream = await liveStream(b, connect(b, user), conversationId);
    const first = await nextStreamEvent(stream);
    expect(first).toMatchObject({ offset: 0, delta: prefix, message: { status: "STREAMING" } });

    gate.resolve();
    const events = [first, ...(await eventsUntilSettled(stream))];
    expect(joined(events)).toBe(ANSWER);
    expect(events.at(-1)!.message).toMatchObject({ status: "COMPLETE", content: ANSWER });
    const turn = await vi.waitFor(
      async () => {
        const row = await a.db.turn.findUniqueOrThrow({ where: { id: parseId(started.turn.id, "id", "Turn") } });
        expect(row.status, "the turn's status").not.toBe("RUNNING");
        return row;
      },
      { timeout: 15_000, interval: 20 },
    );
    expect(turn.status).toBe("COMPLETED");
    stream.dispose();
  });

  it("should deliver through messageAdded, once it settles, an answer that was streaming when the subscription started", async () => {
    const user = await newUser(a);
    const conversationId = await newConversationOf(user);
    const gate = deferred();
    fake.enqueue(textReply("Settled after you joined.", { gate: { afterDeltas: 2, until: gate.promise } }));
    await send(a, user, { conversationId, content: "join me", waitForReply: false });
    await vi.waitFor(
      async () => {
        const row = await a.db.message.findFirst({ where: { userId: user.id, role: "assistant" } });
        expect(row?.status, "the answer's status").toBe("STREAMING");
        expect(row?.content, "the answer written so far").not.toBe("");
      },
      { timeout: 15_000, interval: 20 },
    );

    const client = connect(b, user);
    const before = b.app.realtime.establishedCount;
    const added = client.subscribe(MESSAGE_ADDED, { conversationId });
    await vi.waitFor(() => expect(b.app.realtime.establishedCount, "established subscriptions").toBeGreaterThan(before), {
      timeout: 10_000,
      interval: 10,
    });
    gate.resolve();

    expect((await added.next()).data?.messageAdded).toMatchObject({ role: "ASSISTANT", content: "Settled after you joined." });
    expect(added.pending()).toEqual([]);
    added.dispose();
  });

  it("should sum the billed tokens of every model call of a turn into its usage", async () => {
    const user = await newUser(a);
    fake.enqueue(
      toolCallReply([{ id: `call_${randomUUID()}`, name: "add_task", args: { title: "Counted" } }]),
      textReply("Added it.", { usage: { billed_units: { input_tokens: 7, output_tokens: 3 } } }),
    );
    const payload = await send(a, user, { content: "add counted" });
    expect(payload.reply?.content).toBe("Added it.");
    // The tool step's message-end billed 10 in, 5 out (the fake's default).
    expect(payload.turn).toMatchObject({ status: "COMPLETED", stopCode: null, usage: { inputTokens: 17, outputTokens: 8 } });
    expect(payload.turn.finishedAt).not.toBeNull();
    expect(payload.messages.map((m) => [m.role, m.status])).toEqual([
      ["USER", "COMPLETE"],
      ["ASSISTANT", "COMPLETE"],
      ["TOOL", "COMPLETE"],
      ["ASSISTANT", "COMPLETE"],
    ]);
  });

  it("should deliver messageStream through urql's subscriptionExchange", async () => {
    const user = await newUser(a);
    const conversationId = await newConversationOf(user);
    const authorization = `Bearer ${user.token}`;
    const ws: WsClient = createWsClient({ url: b.wsUrl, webSocketImpl: WebSocket, retryAttempts: 0, connectionParams: { authorization } });
    closers.push(() => ws.dispose() as Promise<void>);
    const client = new Client({
      url: b.url,
      fetchOptions: () => ({ headers: { authorization } }),
      requestPolicy: "network-only",
      exchanges: [
        fetchExchange,
        subscriptionExchange({
          forwardSubscription: (request) => ({
            subscribe: (sink) => ({ unsubscribe: ws.subscribe({ ...request, query: request.query ?? "" }, sink) }),
          }),
        }),
      ],
    });
    const results: OperationResult[] = [];
    let onResult = () => {};
    const before = b.app.streams.establishedCount;
    const subscription = client
      .subscription(`subscription S($c: ID!) { messageStream(conversationId: $c) { offset delta message { id status content } } }`, {
        c: conversationId,
      })
      .subscribe((result) => {
        results.push(result);
        onResult();
      });
    closers.push(async () => subscription.unsubscribe());
    await vi.waitFor(() => expect(b.app.streams.establishedCount, "established streams").toBeGreaterThan(before), { timeout: 10_000, interval: 10 });

    fake.enqueue(textReply("Streamed through urql.", { eventDelayMs: 5 }));
    const payload = await send(a, user, { conversationId, content: "hi urql" });
    expect(payload.reply?.content).toBe("Streamed through urql.");
    await within(
      new Promise<void>((resolve) => {
        onResult = () => results.at(-1)?.data?.messageStream.message.status === "COMPLETE" && resolve();
        onResult();
      }),
      10_000,
      "the last urql event",
    );
    expect(results.every((result) => result.error === undefined)).toBe(true);
    const events = results.map((result) => result.data!.messageStream as StreamEventView);
    expect(joined(events)).toBe("Streamed through urql.");
    expect(events.at(-1)!.message).toMatchObject({ id: payload.reply!.id, status: "COMPLETE" });
  });

  it("should deliver messageStream over SSE", async () => {
    const user = await newUser(a);
    const conversationId = await newConversationOf(user);
    const before = b.app.streams.establishedCount;
    const response = await fetch(b.url, {
      method: "POST",
      headers: { accept: "text/event-stream", "content-type": "application/json", authorization: `Bearer ${user.token}` },
      body: JSON.stringify({
        query: `subscription S($c: ID!) { messageStream(conversationId: $c) { offset delta message { id status } } }`,
        variables: { c: conversationId },
      }),
    });
    expect(response.status).toBe(200);
    const sse: SseReader = readSse(response);
    closers.push(() => sse.cancel());
    await vi.waitFor(() => expect(b.app.streams.establishedCount, "established streams").toBeGreaterThan(before), { timeout: 10_000, interval: 10 });

    fake.enqueue(textReply("Streamed over SSE, step by step.", { eventDelayMs: 5 }));
    const payload = await send(a, user, { conversationId, content: "hi sse" });
    const events: StreamEventView[] = [];
    while (events.at(-1)?.message.status !== "COMPLETE") {
      const result = (await sse.next()) as { data?: { messageStream: StreamEventView }; errors?: unknown };
      expect(result.errors).toBeUndefined();
      events.push(result.data!.messageStream);
    }
    expect(joined(events)).toBe("Streamed over SSE, step by step.");
    expect(events.at(-1)!.message.id).toBe(payload.reply!.id);
    await sse.cancel();
  });

  it("should answer NOT_FOUND for another user's conversation, and for one that does not exist", async () => {
    const owner = await newUser(a, "owner");
    const intruder = await newUser(a, "intruder");
    const conversationId = await newConversationOf(owner);
    const client = connect(b, intruder);
    for (const id of [conversationId, toGlobalId("Conversation", randomUUID())]) {
      const sub = client.subscribe(`subscription S($c: ID!) { messageStream(conversationId: $c) { offset } }`, { c: id });
      const result = await sub.next();
      expect(result.data ?? null).toBeNull();
      expect(result.errors?.[0]).toMatchObject({ message: "Conversation not found", extensions: { code: "NOT_FOUND" } });
      await within(sub.ended, 10_000, "the end of the refused subscription");
    }
  });
});

describe("streamed answers across a LISTEN outage", () => {
  let fake: FakeCohere;
  let gate: TcpGate;
  let admin: pg.Client;
  let a: TestServer;
  let b: TestServer;
  let client: TestWsClient;

  beforeAll(async () => {
    fake = await startFakeCohere();
    gate = await startTcpGate(databaseUrl());
    admin = await adminClient(databaseUrl());
    a = await startTestServer({ assistant: cohereAssistant(fake) });
    // b's LISTEN connection goes through the gate, which the test can cut.
    b = await startTestServer({ assistant: cohereAssistant(fake), listenUrl: gate.url });
  });
  afterAll(async () => {
    await client?.dispose();
    await a.close();
    await b.close();
    await gate.close();
    await admin.end();
    await fake.close();
  });

  it("should catch a subscriber up from the row, with no gap, once its instance listens again", async () => {
    const user = await newUser(a);
    const created = await user.gql<{ createConversation: { id: string } }>(`mutation { createConversation { id } }`);
    const conversationId = created.data!.createConversation.id;
    client = wsClient(b.wsUrl, user.token);
    const stream = await liveStream(b, client, conversationId);

    await killListener(b, gate, admin);
    const chunks = wordChunks(ANSWER);
    const held = deferred();
    fake.enqueue(textReply(ANSWER, { chunks, gate: { afterDeltas: 12, until: held.promise } }));
    await a.request(SEND_LIVE, { input: { conversationId, content: "while you were away", waitForReply: false } }, user.token);
    const prefix = chunks.slice(0, 12).join("");
    // Written while b could not hear them.
    await vi.waitFor(
      async () => {
        const row = await a.db.message.findFirst({ where: { userId: user.id, role: "assistant" } });
        expect(row?.content, "the answer written so far").toBe(prefix);
      },
      { timeout: 15_000, interval: 20 },
    );
    expect(stream.pending()).toEqual([]);

    gate.open();
    const first = await nextStreamEvent(stream, 15_000);
    expect(first).toMatchObject({ offset: 0, delta: prefix, message: { status: "STREAMING" } });
    held.resolve();
    const events = [first, ...(await eventsUntilSettled(stream))];
    expect(joined(events)).toBe(ANSWER);
    expect(events.at(-1)!.message.status).toBe("COMPLETE");
    stream.dispose();
  });
});
