import { randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ANSWER_CUT_ERROR } from "../../src/chat/step-bounds.js";
import { messagesIn, startChatRig } from "../helpers/chat.js";
import { textReply, toolCallReply, type FakeCohere } from "../helpers/fake-cohere.js";
import { newUser, type TestServer, type TestUser } from "../helpers/server.js";
import { wsClient, type TestWsClient } from "../helpers/ws-client.js";
import { deferred, eventsUntilSettled, joined, liveStream, nextStreamEvent } from "./support.js";

/**
 * The bounds on one model step, at their defaults (CHAT_MAX_TOOL_CALLS_PER_STEP
 * 16, CHAT_MAX_ANSWER_CHARS 20,000), through the real cohere-ai SDK against
 * the fake Cohere: past the first, none of the step's calls run and the turn
 * ends with ASSISTANT_TOO_MANY_TOOL_CALLS; past the second, the answer is cut
 * with a marker, stored and streamed cut, and the turn says so.
 */

const SEND = /* GraphQL */ `
  mutation Send($input: SendMessageInput!) {
    sendMessage(input: $input) {
      conversation {
        id
      }
      userMessage {
        content
      }
      reply {
        content
        status
      }
      toolCalls {
        id
        name
      }
      turn {
        status
        stopCode
      }
    }
  }
`;

const TASK_COUNT = /* GraphQL */ `
  query {
    tasks(first: 100) {
      edges {
        node {
          id
        }
      }
    }
  }
`;

interface Payload {
  conversation: { id: string };
  userMessage: { content: string };
  reply: { content: string; status: string } | null;
  toolCalls: { id: string; name: string }[];
  turn: { status: string; stopCode: string | null };
}

interface Response {
  data?: { sendMessage: Payload } | null;
  errors?: { message: string; path?: unknown[]; extensions?: Record<string, unknown> }[];
}

const MARKER = "… [answer cut at 20,000 characters]";

describe("bounds on one model step", () => {
  let fake: FakeCohere;
  let server: TestServer;
  const clients: TestWsClient[] = [];

  beforeAll(async () => {
    ({ fake, server } = await startChatRig());
  });
  afterAll(async () => {
    await Promise.all(clients.map((client) => client.dispose()));
    await server?.close();
    await fake?.close();
  });

  async function send(user: TestUser, input: Record<string, unknown>): Promise<Response> {
    return (await user.gql(SEND, { input })) as Response;
  }

  async function taskCount(user: TestUser): Promise<number> {
    const response = await user.gql<{ tasks: { edges: unknown[] } }>(TASK_COUNT);
    return response.data!.tasks.edges.length;
  }

  function addCalls(count: number) {
    return Array.from({ length: count }, (_, index) => ({ name: "add_task", args: { title: `bulk ${index}` } }));
  }

  it("should run none of 100 add_task calls in one step and end the turn with ASSISTANT_TOO_MANY_TOOL_CALLS", async () => {
    const user = await newUser(server, "bulk-calls");
    const requestsBefore = fake.requests.length;
    fake.enqueue(toolCallReply(addCalls(100)));

    const response = await send(user, { content: "add a hundred tasks", clientMessageId: randomUUID() });

    expect(await taskCount(user)).toBe(0);
    const payload = response.data!.sendMessage;
    expect(payload.turn).toEqual({ status: "COMPLETED", stopCode: "ASSISTANT_TOO_MANY_TOOL_CALLS" });
    expect(payload.toolCalls).toEqual([]);
    expect(payload.reply?.content).toMatch(/more than 16 tool calls at once, so I made none of them/);
    expect(response.errors).toHaveLength(1);
    expect(response.errors![0]).toMatchObject({
      path: ["sendMessage"],
      message: payload.reply!.content,
      extensions: { code: "ASSISTANT_TOO_MANY_TOOL_CALLS" },
    });
    // One model call; nothing of the step stored but the stop message.
    expect(fake.requests.length - requestsBefore).toBe(1);
    const rows = await messagesIn(server.db, payload.conversation.id);
    expect(rows.map((row) => [row.role, row.stopCode])).toEqual([
      ["user", null],
      ["assistant", "ASSISTANT_TOO_MANY_TOOL_CALLS"],
    ]);
  });

  it("should not run or store 500 list_tasks calls of one step", async () => {
    const user = await newUser(server, "bulk-reads");
    fake.enqueue(toolCallReply(Array.from({ length: 500 }, () => ({ name: "list_tasks", args: {} }))));

    const response = await send(user, { content: "list five hundred times" });

    const payload = response.data!.sendMessage;
    expect(payload.turn.stopCode).toBe("ASSISTANT_TOO_MANY_TOOL_CALLS");
    const rows = await messagesIn(server.db, payload.conversation.id);
    expect(rows.filter((row) => row.role === "tool")).toEqual([]);
    expect(rows).toHaveLength(2);
  });

  it("should run a step of exactly 16 calls, the bound itself", async () => {
    const user = await newUser(server, "bulk-bound");
    fake.enqueue(toolCallReply(addCalls(16)), textReply("Added sixteen."));

    const response = await send(user, { content: "add sixteen tasks" });

    expect(response.errors).toBeUndefined();
    expect(response.data!.sendMessage.turn).toEqual({ status: "COMPLETED", stopCode: null });
    expect(await taskCount(user)).toBe(16);
  });

  it("should cut a 5,000,000-character answer at 20,000 characters with a marker, stored, streamed and answered so", async () => {
    const user = await newUser(server, "long-answer");
    const created = await user.gql<{ createConversation: { id: string } }>(`mutation { createConversation { id } }`);
    const conversationId = created.data!.createConversation.id;
    const client = wsClient(server.wsUrl, user.token);
    clients.push(client);
    const stream = await liveStream(server, client, conversationId);
    const chunk = "abcdefghi ".repeat(1000);
    const chunks = Array.from({ length: 500 }, () => chunk);
    // The model waits after its first delta until that text has streamed out as a STREAMING row.
    const firstStreamed = deferred();
    fake.enqueue(textReply(chunks.join(""), { chunks, gate: { afterDeltas: 1, until: firstStreamed.promise } }));

    const sent = send(user, { content: "write me a novel", conversationId, clientMessageId: randomUUID() });
    const first = await nextStreamEvent(stream);
    expect(first).toMatchObject({ offset: 0, delta: chunk, message: { status: "STREAMING" } });
    firstStreamed.resolve();
    const response = await sent;

    const expected = chunk.repeat(2) + MARKER;
    const payload = response.data!.sendMessage;
    expect(payload.reply).toEqual({ content: expected, status: "COMPLETE" });
    expect(payload.turn).toEqual({ status: "COMPLETED", stopCode: "ASSISTANT_ANSWER_TOO_LONG" });
    expect(response.errors).toEqual([
      expect.objectContaining({ message: ANSWER_CUT_ERROR, extensions: expect.objectContaining({ code: "ASSISTANT_ANSWER_TOO_LONG" }) }),
    ]);
    const rows = await messagesIn(server.db, conversationId);
    expect(rows.at(-1)).toMatchObject({ role: "assistant", content: expected, status: "COMPLETE", stopCode: "ASSISTANT_ANSWER_TOO_LONG" });

    // messageStream never carried more than the cut answer, and ends with the marker.
    const events = [first, ...(await eventsUntilSettled(stream))];
    expect(joined(events)).toBe(expected);
    expect(events.at(-1)!.message.status).toBe("COMPLETE");
  });

  it("should count the answer bound in characters, never splitting a character in two", async () => {
    const user = await newUser(server, "long-emoji");
    const chunk = "🧾".repeat(5000);
    const chunks = Array.from({ length: 10 }, () => chunk);
    fake.enqueue(textReply(chunks.join(""), { chunks }));

    const response = await send(user, { content: "receipts, please" });

    const reply = response.data!.sendMessage.reply!.content;
    expect(reply).toBe("🧾".repeat(20_000) + MARKER);
    expect(reply.isWellFormed()).toBe(true);
  });

  it("should keep an answer of exactly 20,000 characters whole, with no marker", async () => {
    const user = await newUser(server, "bound-answer");
    const text = "x".repeat(20_000);
    fake.enqueue(textReply(text, { chunks: [text.slice(0, 12_345), text.slice(12_345)] }));

    const response = await send(user, { content: "exactly enough" });

    expect(response.errors).toBeUndefined();
    expect(response.data!.sendMessage.reply!.content).toBe(text);
    expect(response.data!.sendMessage.turn.stopCode).toBeNull();
  });
});
