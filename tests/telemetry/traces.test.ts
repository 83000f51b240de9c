import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { parseId } from "../../src/lib/ids.js";
import { startTracing, type TracingHandle } from "../../src/telemetry/tracing.js";
import { cohereAssistant, sendMessage, TEST_COHERE_KEY } from "../helpers/chat.js";
import { startFakeCohere, textReply, toolCallReply, type FakeCohere } from "../helpers/fake-cohere.js";
import { capturingLogger, newUser, startTestServer, type TestServer, type TestUser } from "../helpers/server.js";
import { spansOf, startReceiver, type OtlpSpan, type Receiver } from "./support.js";

/**
 * Traces end to end: the real server with OpenTelemetry on, exporting over
 * OTLP/HTTP to a collector played by a node:http server in this process,
 * a chat turn through the real cohere-ai SDK against the fake Cohere.
 */

function attribute(span: OtlpSpan, key: string): unknown {
  const value = span.attributes?.find((entry) => entry.key === key)?.value;
  return value?.stringValue ?? value?.intValue ?? value?.boolValue;
}

/** Whether `ancestor` is above `span` in its trace. */
function isBeneath(span: OtlpSpan, ancestor: OtlpSpan, byId: Map<string, OtlpSpan>): boolean {
  for (let parent = span.parentSpanId; parent; parent = byId.get(parent)?.parentSpanId) {
    if (parent === ancestor.spanId) return true;
  }
  return false;
}

const BATCH = { scheduledDelayMillis: 50 };

describe("traces over OTLP/HTTP (http/json)", () => {
  let receiver: Receiver;
  let tracing: TracingHandle;
  let fake: FakeCohere;
  let server: TestServer;
  let user: TestUser;

  beforeAll(async () => {
    receiver = await startReceiver();
    tracing = await startTracing({
      endpoint: receiver.url,
      protocol: "http/json",
      serviceName: "trace-test",
      logger: capturingLogger().logger,
      batch: BATCH,
    });
    fake = await startFakeCohere();
    server = await startTestServer({ assistant: cohereAssistant(fake), tracing: tracing.tracing });
    user = await newUser(server, "traces");
  });
  afterAll(async () => {
    await server?.close();
    await tracing?.shutdown();
    await fake?.close();
    await receiver?.close();
  });

  it("should export one trace per chat turn: operation, turn, model calls, tool call and their database queries, without message text", async () => {
    fake.enqueue(toolCallReply([{ name: "add_task", args: { title: "Confidential groceries" } }]), textReply("Added your confidential list."));
    const response = await sendMessage(user, { content: "Please remember my confidential groceries", clientMessageId: crypto.randomUUID() });
    expect(response.errors).toBeUndefined();
    // Exports are batched: flush until the turn's last span (it ends after the operation's) is in.
    await vi.waitFor(
      async () => {
        await tracing.flush();
        expect(spansOf(receiver).some((span) => span.name === "chat.turn")).toBe(true);
        expect(spansOf(receiver).some((span) => span.name === "mutation Send")).toBe(true);
      },
      { timeout: 10_000, interval: 100 },
    );

    const spans = spansOf(receiver);
    const byId = new Map(spans.map((span) => [span.spanId, span]));
    const operation = spans.find((span) => span.name === "mutation Send");
    expect(operation, "the sendMessage operation's span").toBeDefined();
    const inTrace = spans.filter((span) => span.traceId === operation!.traceId);

    const turns = inTrace.filter((span) => span.name === "chat.turn");
    expect(turns).toHaveLength(1);
    const turn = turns[0]!;
    expect(isBeneath(turn, operation!, byId)).toBe(true);
    const conversationId = parseId(response.data!.sendMessage.conversation.id, "id", "Conversation");
    expect(attribute(turn, "chat.conversation.id")).toBe(conversationId);
    const storedTurn = await server.db.turn.findFirstOrThrow({ where: { conversationId } });
    expect(attribute(turn, "chat.turn.id")).toBe(storedTurn.id);
    expect(attribute(turn, "chat.turn.status")).toBe("COMPLETED");

    const modelCalls = inTrace.filter((span) => span.name === "chat.model_call");
    expect(modelCalls).toHaveLength(2);
    for (const call of modelCalls) {
      expect(call.parentSpanId).toBe(turn.spanId);
      expect(attribute(call, "chat.turn.id")).toBe(storedTurn.id);
      expect(attribute(call, "chat.conversation.id")).toBe(conversationId);
    }
    const toolCalls = inTrace.filter((span) => span.name === "chat.tool_call");
    expect(toolCalls).toHaveLength(1);
    // Beneath the turn, inside the transaction that stores its result.
    expect(isBeneath(toolCalls[0]!, turn, byId)).toBe(true);
    expect(attribute(toolCalls[0]!, "chat.tool.name")).toBe("add_task");
    expect(attribute(toolCalls[0]!, "chat.turn.id")).toBe(storedTurn.id);

    // Prisma's own spans (driver adapter): the tool's insert beneath the tool call, the turn's reads and writes beneath the turn.
    const queries = inTrace.filter((span) => span.name === "prisma:client:db_query");
    expect(
      queries.some(
        (query) => isBeneath(query, toolCalls[0]!, byId) && /INSERT INTO (?:"public"\.)?"?tasks"? /i.test(String(attribute(query, "db.query.text"))),
      ),
    ).toBe(true);
    expect(queries.some((query) => isBeneath(query, turn, byId) && !isBeneath(query, toolCalls[0]!, byId))).toBe(true);
    // Every span of the turn is in the operation's trace.
    expect(spans.filter((span) => span.name.startsWith("chat.") && span.traceId !== operation!.traceId)).toEqual([]);

    const exported = receiver.bodies.map(({ body }) => body.toString("utf8")).join("\n");
    expect(exported).not.toContain("onfidential");
    expect(exported).not.toContain(user.token);
    expect(exported).not.toContain(TEST_COHERE_KEY);
    expect(exported).not.toContain(user.id);
  });

  it("should export the task list's direct read as a database span beneath its operation, without the values", async () => {
    const response = await user.gql(`query ListForTrace { tasks(first: 5) { edges { node { id } } } }`);
    expect(response.errors).toBeUndefined();
    let operation: OtlpSpan | undefined;
    await vi.waitFor(
      async () => {
        await tracing.flush();
        operation = spansOf(receiver).find((span) => span.name === "query ListForTrace");
        expect(operation).toBeDefined();
      },
      { timeout: 10_000, interval: 100 },
    );
    const spans = spansOf(receiver);
    const byId = new Map(spans.map((span) => [span.spanId, span]));
    const reads = spans.filter((span) => span.name === "pg.query" && isBeneath(span, operation!, byId));
    expect(reads.some((span) => /FROM tasks/i.test(String(attribute(span, "db.query.text"))))).toBe(true);
    for (const read of reads) expect(attribute(read, "db.system.name")).toBe("postgresql");
    const exported = receiver.bodies.map(({ body }) => body.toString("utf8")).join("\n");
    expect(exported).not.toContain(user.id);
  });
});

describe("traces over OTLP/HTTP (http/protobuf)", () => {
  it("should export spans as protobuf when asked to", async () => {
    const receiver = await startReceiver();
    const tracing = await startTracing({
      endpoint: receiver.url,
      protocol: "http/protobuf",
      serviceName: "trace-test",
      logger: capturingLogger().logger,
      batch: BATCH,
    });
    const server = await startTestServer({ tracing: tracing.tracing });
    try {
      const user = await newUser(server, "traces-proto");
      expect((await user.gql(`query TracedProto { __typename }`)).errors).toBeUndefined();
      // The operation's span name, as protobuf carries strings verbatim; exports are batched, so it may take more than one flush.
      await vi.waitFor(
        async () => {
          await tracing.flush();
          expect(Buffer.concat(receiver.bodies.map(({ body }) => body)).includes("query TracedProto")).toBe(true);
        },
        { timeout: 10_000, interval: 100 },
      );
      expect(receiver.bodies.every(({ contentType }) => contentType === "application/x-protobuf")).toBe(true);
    } finally {
      await server.close();
      await tracing.shutdown();
      await receiver.close();
    }
  });
});

describe("an OTLP endpoint that is down", () => {
  it("should log one clear line and keep serving", async () => {
    const closed = await startReceiver();
    const endpoint = closed.url;
    await closed.close();
    const { logger, lines } = capturingLogger();
    const tracing = await startTracing({ endpoint, protocol: "http/json", serviceName: "trace-test", logger, batch: BATCH, exportTimeoutMs: 1000 });
    const server = await startTestServer({ tracing: tracing.tracing });
    try {
      const user = await newUser(server, "traces-down");
      for (let i = 0; i < 3; i += 1) expect((await user.gql(`query TracedDown { __typename }`)).errors).toBeUndefined();
      await tracing.flush();
      expect((await user.gql(`query TracedDownAgain { __typename }`)).errors).toBeUndefined();
      await tracing.flush();
      const warnings = lines
        .map((line) => JSON.parse(line) as { level: number; msg: string })
        .filter((entry) => entry.msg.includes("could not export traces"));
      expect(warnings).toHaveLength(1);
      expect(warnings[0]!.level).toBe(40);
      expect(warnings[0]!.msg).toContain(endpoint);
    } finally {
      await server.close();
      await tracing.shutdown();
    }
  });
});
