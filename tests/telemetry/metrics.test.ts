import { createServer, type Server } from "node:net";
import type pg from "pg";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { parseId, toGlobalId } from "../../src/lib/ids.js";
import { OPERATION_NAMES_CAP } from "../../src/telemetry/metrics.js";
import { cohereAssistant, sendMessage } from "../helpers/chat.js";
import { databaseUrl } from "../helpers/db.js";
import { startFakeCohere, textReply, toolCallReply, wordChunks, type FakeCohere } from "../helpers/fake-cohere.js";
import { deferred, SEND_LIVE, type LivePayload } from "../chat/support.js";
import { capturingLogger, newUser, onNatsTransport, startTestServer, type TestServer, type TestUser } from "../helpers/server.js";
import {
  ADD_TASK,
  adminClient,
  killListener,
  live,
  MESSAGE_ADDED,
  nextEvent,
  nextMessage,
  nextTaskChange,
  startLiveServer,
  TASK_CHANGED,
  type LiveServer,
} from "../realtime/support.js";
import { startTcpGate, type TcpGate } from "../helpers/tcp-gate.js";
import { scrape, testMetrics, valueOf } from "./support.js";

/**
 * /metrics end to end: a real server on port 0 with its metrics listener on
 * another port 0, real HTTP and graphql-ws clients, the real cohere-ai SDK
 * against the fake Cohere, scraped as Prometheus would.
 */

const TASKS = /* GraphQL */ `
  query MetricsTasks {
    tasks(first: 5) {
      edges {
        node {
          id
        }
      }
    }
  }
`;

const COMPLETE = /* GraphQL */ `
  mutation MetricsComplete($id: ID!) {
    completeTask(id: $id) {
      id
    }
  }
`;

describe("metrics", () => {
  let fake: FakeCohere;
  let server: LiveServer;
  let user: TestUser;

  beforeAll(async () => {
    fake = await startFakeCohere();
    server = await startLiveServer({ assistant: cohereAssistant(fake), metrics: testMetrics() });
    user = await newUser(server, "metrics");
  });
  afterAll(async () => {
    await server?.close();
    await fake?.close();
  });

  it("should serve /metrics on its own listener and answer 404 for it on the public port", async () => {
    expect(server.metricsUrl).toBeDefined();
    expect(new URL(server.metricsUrl!).port).not.toBe(new URL(server.baseUrl).port);
    const onPublic = await fetch(`${server.baseUrl}/metrics`);
    expect(onPublic.status).toBe(404);
    await onPublic.body?.cancel();
    const elsewhere = await fetch(new URL("/graphql", server.metricsUrl));
    expect(elsewhere.status).toBe(404);
    await elsewhere.body?.cancel();
    const { samples } = await scrape(server.metricsUrl);
    // Node's default metrics and the pool's gauges are there from the first scrape.
    expect(samples.some((sample) => sample.name === "process_cpu_user_seconds_total")).toBe(true);
    expect(samples.some((sample) => sample.name === "nodejs_eventloop_lag_seconds")).toBe(true);
    expect(samples.some((sample) => sample.name === "db_pool_connections_idle")).toBe(true);
    expect(samples.some((sample) => sample.name === "db_pool_requests_waiting")).toBe(true);
  });

  it("should count a query by its operation name and type, with its duration", async () => {
    const labels = { operationName: "MetricsTasks", operationType: "query" };
    const before = (await scrape(server.metricsUrl)).samples;
    const response = await user.gql(TASKS);
    expect(response.errors).toBeUndefined();
    const after = (await scrape(server.metricsUrl)).samples;
    expect(valueOf(after, "graphql_envelop_request", labels) - valueOf(before, "graphql_envelop_request", labels)).toBe(1);
    expect(valueOf(after, "graphql_envelop_request_duration_count", labels) - valueOf(before, "graphql_envelop_request_duration_count", labels)).toBe(
      1,
    );
    const http = { ...labels, method: "POST", statusCode: "200" };
    expect(valueOf(after, "graphql_yoga_http_duration_count", http) - valueOf(before, "graphql_yoga_http_duration_count", http)).toBe(1);
    expect(valueOf(after, "graphql_envelop_error_result", { ...labels, code: "NOT_FOUND" })).toBe(0);
  });

  it("should count failing operations by the code the client got", async () => {
    const missing = await user.gql(COMPLETE, { id: toGlobalId("Task", "00000000-0000-4000-8000-000000000000") });
    expect(missing.errors?.[0]?.extensions?.code).toBe("NOT_FOUND");
    const invalid = await user.gql(`query MetricsInvalid { noSuchField }`);
    expect(invalid.errors?.[0]?.extensions?.code).toBe("BAD_USER_INPUT");
    const unparsable = await user.gql(`query MetricsBroken {`);
    expect(unparsable.errors?.[0]?.extensions?.code).toBe("BAD_USER_INPUT");

    const { samples } = await scrape(server.metricsUrl);
    expect(valueOf(samples, "graphql_envelop_error_result", { operationName: "MetricsComplete", operationType: "mutation", code: "NOT_FOUND" })).toBe(
      1,
    );
    // A name that never validated is no label of its own.
    expect(samples.some((sample) => sample.labels.operationName === "MetricsInvalid")).toBe(false);
    expect(
      valueOf(samples, "graphql_envelop_error_result", { operationName: "other", operationType: "query", code: "BAD_USER_INPUT" }),
    ).toBeGreaterThanOrEqual(1);
    expect(valueOf(samples, "graphql_envelop_error_result", { operationType: "unknown", code: "BAD_USER_INPUT" })).toBeGreaterThanOrEqual(1);
  });

  it("should count a chat turn, its model calls, tokens and tool call, and carry no text or user id", async () => {
    fake.enqueue(toolCallReply([{ name: "add_task", args: { title: "Metrics secret groceries" } }]), textReply("Added it."));
    const before = (await scrape(server.metricsUrl)).samples;
    const response = await sendMessage(user, { content: "Metrics secret: remember the groceries", clientMessageId: crypto.randomUUID() });
    expect(response.errors).toBeUndefined();
    const { text, samples: after } = await scrape(server.metricsUrl);
    const moved = (name: string, labels: Record<string, string>) => valueOf(after, name, labels) - valueOf(before, name, labels);

    expect(moved("chat_turns_total", { status: "COMPLETED", stop_code: "none" })).toBe(1);
    expect(moved("chat_model_call_duration_seconds_count", { outcome: "ok" })).toBe(2);
    // FAKE_USAGE bills 10 tokens in and 5 out per call.
    expect(moved("chat_model_tokens_total", { direction: "in" })).toBe(20);
    expect(moved("chat_model_tokens_total", { direction: "out" })).toBe(10);
    expect(moved("chat_tool_calls_total", { tool: "add_task", outcome: "ok" })).toBe(1);
    expect(moved("graphql_envelop_request", { operationName: "Send", operationType: "mutation" })).toBe(1);

    expect(text).not.toContain("secret");
    expect(text).not.toContain(user.id);
    expect(text).not.toContain(user.token);
  });

  it("should count a tool call the tool refused as an error", async () => {
    fake.enqueue(toolCallReply([{ name: "complete_task", args: { id: "not-a-task" } }]), textReply("Could not."));
    const before = (await scrape(server.metricsUrl)).samples;
    const response = await sendMessage(user, { content: "Complete it", clientMessageId: crypto.randomUUID() });
    expect(response.errors).toBeUndefined();
    const after = (await scrape(server.metricsUrl)).samples;
    const labels = { tool: "complete_task", outcome: "error" };
    expect(valueOf(after, "chat_tool_calls_total", labels) - valueOf(before, "chat_tool_calls_total", labels)).toBe(1);
  });

  it("should show live subscribers by kind, open WebSockets and the notification lag of a delivery", async () => {
    const client = server.connect(user.token);
    const sub = await live(server, client, TASK_CHANGED);
    let samples = (await scrape(server.metricsUrl)).samples;
    expect(valueOf(samples, "realtime_subscribers", { kind: "taskChanged" })).toBe(1);
    expect(valueOf(samples, "websocket_connections_open")).toBe(1);
    const lagBefore = valueOf(samples, "realtime_notification_lag_seconds_count", { kind: "taskChanged" });

    const added = await user.gql(ADD_TASK, { title: "Lag probe" });
    expect(added.errors).toBeUndefined();
    expect((await nextTaskChange(sub)).kind).toBe("CREATED");
    samples = (await scrape(server.metricsUrl)).samples;
    expect(valueOf(samples, "realtime_notification_lag_seconds_count", { kind: "taskChanged" }) - lagBefore).toBe(1);
    expect(valueOf(samples, "graphql_envelop_request", { operationName: "anonymous", operationType: "subscription" })).toBeGreaterThanOrEqual(1);

    sub.dispose();
    await vi.waitFor(
      async () => expect(valueOf((await scrape(server.metricsUrl)).samples, "realtime_subscribers", { kind: "taskChanged" })).toBe(0),
      {
        timeout: 10_000,
        interval: 20,
      },
    );
  });

  it("should observe the notification lag of messageAdded, a streamed answer's from when it settled", async () => {
    const client = server.connect(user.token);
    const added = await live(server, client, MESSAGE_ADDED);
    const lagBefore = valueOf((await scrape(server.metricsUrl)).samples, "realtime_notification_lag_seconds_count", { kind: "messageAdded" });

    const chunks = wordChunks("Lag probe answer, streamed a word at a time.");
    const gate = deferred();
    fake.enqueue(textReply(chunks.join(""), { chunks, eventDelayMs: 5, gate: { afterDeltas: 1, until: gate.promise } }));
    const started = await server.request<{ sendMessage: LivePayload }>(
      SEND_LIVE,
      { input: { content: "Lag probe", waitForReply: false } },
      user.token,
    );
    expect(started.errors).toBeUndefined();
    const conversationId = parseId(started.data!.sendMessage.conversation.id, "id", "Conversation");
    expect((await nextMessage(added)).role).toBe("USER");
    // The answer is stored STREAMING before the gate opens: its created_at is the stream's start, not its settle.
    await vi.waitFor(
      async () => expect((await server.db.message.findFirst({ where: { conversationId, role: "assistant" } }))?.status).toBe("STREAMING"),
      { timeout: 15_000, interval: 20 },
    );
    gate.resolve();
    expect((await nextMessage(added)).role).toBe("ASSISTANT");

    const samples = (await scrape(server.metricsUrl)).samples;
    expect(valueOf(samples, "realtime_notification_lag_seconds_count", { kind: "messageAdded" }) - lagBefore).toBe(2);
    // The lag's starting point: stamped by the statement that settled the answer and ended the turn.
    const answer = await server.db.message.findFirstOrThrow({ where: { conversationId, role: "assistant" } });
    const turn = await server.db.turn.findFirstOrThrow({ where: { conversationId } });
    expect(answer.status).toBe("COMPLETE");
    expect(answer.settledAt).toEqual(turn.finishedAt);
    expect(answer.settledAt!.getTime()).toBeGreaterThan(answer.createdAt.getTime());
    added.dispose();
  });

  it("should bound the operation names it labels, the rest counted as other", async () => {
    const names = Array.from({ length: OPERATION_NAMES_CAP + 20 }, (_, i) => `MetricsName${i}`);
    for (const name of names) expect((await user.gql(`query ${name} { __typename }`)).errors).toBeUndefined();
    const { samples } = await scrape(server.metricsUrl);
    const labelled = new Set(samples.filter((sample) => sample.name === "graphql_envelop_request").map((sample) => sample.labels.operationName));
    expect(labelled.size).toBeLessThanOrEqual(OPERATION_NAMES_CAP + 2);
    expect(labelled.has("other")).toBe(true);
    expect(labelled.has(names.at(-1))).toBe(false);
  });
});

describe("metrics listener failures", () => {
  let blocker: Server;
  let server: TestServer | undefined;

  beforeAll(async () => {
    blocker = createServer();
    await new Promise<void>((resolve) => blocker.listen(0, "127.0.0.1", resolve));
  });
  afterAll(async () => {
    await server?.close();
    await new Promise((resolve) => blocker.close(resolve));
  });

  it("should log one warning and serve the API when METRICS_PORT is in use", async () => {
    const port = (blocker.address() as { port: number }).port;
    const { logger, lines } = capturingLogger();
    server = await startTestServer({ logger, metrics: testMetrics(port) });
    expect(server.metricsUrl).toBeUndefined();
    const warnings = lines
      .map((line) => JSON.parse(line) as { level: number; msg: string })
      .filter((entry) => entry.msg.includes("metrics listener"));
    expect(warnings).toHaveLength(1);
    expect(warnings[0]!.level).toBe(40);
    expect(warnings[0]!.msg).toContain(`127.0.0.1:${port}`);
    expect(warnings[0]!.msg).toContain("in use");
    const user = await newUser(server, "metrics-port");
    expect((await user.gql(TASKS)).errors).toBeUndefined();
  });
});

describe.skipIf(onNatsTransport())("listener reconnects", () => {
  let gate: TcpGate;
  let server: LiveServer;
  let admin: pg.Client;

  beforeAll(async () => {
    gate = await startTcpGate(databaseUrl());
    server = await startLiveServer({ listenUrl: gate.url, metrics: testMetrics() });
    admin = await adminClient(databaseUrl());
  });
  afterAll(async () => {
    gate?.open();
    await server?.close();
    await gate?.close();
    await admin?.end();
  });

  it("should count a reconnect of the LISTEN connection, not its first connection", async () => {
    await vi.waitFor(() => expect(server.app.transport.connected).toBe(true), { timeout: 15_000, interval: 10 });
    expect(valueOf((await scrape(server.metricsUrl)).samples, "realtime_listener_reconnects_total")).toBe(0);
    await killListener(server, gate, admin);
    const back = nextEvent(server.app.transport, "reconnected");
    gate.open();
    await back;
    expect(valueOf((await scrape(server.metricsUrl)).samples, "realtime_listener_reconnects_total")).toBe(1);
  });
});
