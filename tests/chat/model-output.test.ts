import { randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { messagesIn, startChatRig } from "../helpers/chat.js";
import { textReply, toolCallReply, type FakeCohere, type RecordedRequest, type ScriptedReply } from "../helpers/fake-cohere.js";
import { newUser, type TestServer, type TestUser } from "../helpers/server.js";

/**
 * What the model sends is untrusted input: tool-call ids, tool names, plans,
 * argument keys and values, answer text. Through the real cohere-ai SDK
 * against the fake Cohere, each odd string below must end in a turn that the
 * server can store and read back: never INTERNAL_SERVER_ERROR, the user's
 * message kept, and a retry with the same clientMessageId answered too.
 */

const SEND = /* GraphQL */ `
  mutation Send($input: SendMessageInput!) {
    sendMessage(input: $input) {
      conversation {
        id
      }
      userMessage {
        id
        content
      }
      reply {
        content
      }
      toolCalls {
        id
        name
        arguments
        result
        error
      }
      turn {
        status
        stopCode
      }
    }
  }
`;

interface Payload {
  conversation: { id: string };
  userMessage: { id: string; content: string };
  reply: { content: string } | null;
  toolCalls: { id: string; name: string; arguments: unknown; result: Record<string, unknown> | null; error: string | null }[];
  turn: { status: string; stopCode: string | null };
}

interface Response {
  data?: { sendMessage: Payload } | null;
  errors?: { message: string; extensions?: Record<string, unknown> }[];
}

const LONG_ID = "x".repeat(10_000);

interface Case {
  name: string;
  step: ScriptedReply;
  answer?: string;
  check(payload: Payload): void;
}

/** Nothing a text column or jsonb of Postgres refuses, and nothing silently re-encoded on the way. */
function storable(text: string): boolean {
  return !text.includes("\u0000") && text.isWellFormed();
}

const CASES: Case[] = [
  {
    name: "a NUL in the tool-call id",
    step: toolCallReply([{ id: "call\u0000one", name: "add_task", args: { title: "nul id" } }]),
    check(payload) {
      expect(payload.toolCalls).toHaveLength(1);
      expect(storable(payload.toolCalls[0]!.id)).toBe(true);
      expect(payload.toolCalls[0]!.result).toMatchObject({ title: "nul id" });
    },
  },
  {
    name: "a lone surrogate in the tool-call id",
    step: toolCallReply([{ id: "call\uD800one", name: "add_task", args: { title: "surrogate id" } }]),
    check(payload) {
      expect(storable(payload.toolCalls[0]!.id)).toBe(true);
      expect(payload.toolCalls[0]!.result).toMatchObject({ title: "surrogate id" });
    },
  },
  {
    name: "an over-long tool-call id",
    step: toolCallReply([{ id: LONG_ID, name: "add_task", args: { title: "long id" } }]),
    check(payload) {
      expect(payload.toolCalls[0]!.id.length).toBeLessThanOrEqual(100);
      expect(payload.toolCalls[0]!.result).toMatchObject({ title: "long id" });
    },
  },
  {
    name: "a NUL in the tool name",
    step: toolCallReply([{ name: "add\u0000task", args: { title: "nul name" } }]),
    check(payload) {
      const [call] = payload.toolCalls;
      expect(storable(call!.name)).toBe(true);
      // Not quietly repaired into add_task: the model is told the tool does not exist.
      expect(call!.result).toBeNull();
      expect(call!.error).toMatch(/^Unknown tool/);
    },
  },
  {
    name: "a lone surrogate in the tool name",
    step: toolCallReply([{ name: "add_task\uDC00", args: { title: "surrogate name" } }]),
    check(payload) {
      expect(storable(payload.toolCalls[0]!.name)).toBe(true);
      expect(payload.toolCalls[0]!.error).toMatch(/^Unknown tool/);
    },
  },
  {
    name: "an over-long tool name",
    step: toolCallReply([{ name: "n".repeat(10_000), args: { title: "long name" } }]),
    check(payload) {
      expect([...payload.toolCalls[0]!.name].length).toBeLessThanOrEqual(101);
      expect(payload.toolCalls[0]!.error).toMatch(/^Unknown tool/);
    },
  },
  {
    name: "a NUL and a lone surrogate in the plan",
    step: toolCallReply([{ name: "list_tasks", args: {} }], "I will\u0000 list \uD800 them."),
    check(payload) {
      expect(payload.toolCalls[0]!.result).toMatchObject({ count: 0 });
    },
  },
  {
    name: "a NUL in an argument key",
    step: toolCallReply([{ name: "add_task", args: '{"ti\u0000tle":"nul key"}' }]),
    check(payload) {
      // The key is not quietly repaired into "title": the call is refused.
      expect(payload.toolCalls[0]!.result).toBeNull();
      expect(payload.toolCalls[0]!.error).toMatch(/title/);
    },
  },
  {
    name: "a NUL in an argument value",
    step: toolCallReply([{ name: "add_task", args: '{"title":"a\u0000b"}' }]),
    check(payload) {
      expect(payload.toolCalls[0]!.result).toBeNull();
      expect(payload.toolCalls[0]!.error).toMatch(/^title: must not contain the NUL character/);
    },
  },
  {
    name: "a lone surrogate in an argument value",
    step: toolCallReply([{ name: "add_task", args: '{"title":"a\uD800b"}' }]),
    check(payload) {
      expect(payload.toolCalls[0]!.result).toBeNull();
      expect(payload.toolCalls[0]!.error).toMatch(/^title: must be well-formed Unicode/);
    },
  },
  {
    name: "a lone surrogate in an argument key",
    step: toolCallReply([{ name: "add_task", args: '{"title":"keyed","x\uDBFF":1}' }]),
    check(payload) {
      expect(payload.toolCalls[0]!.result).toMatchObject({ title: "keyed" });
    },
  },
  {
    name: "a NUL and a lone surrogate in the answer",
    step: toolCallReply([{ name: "list_tasks", args: {} }]),
    answer: "Done\u0000 \uDFFF here.",
    check(payload) {
      expect(payload.reply!.content.startsWith("Done")).toBe(true);
    },
  },
];

describe("model output the server cannot take as it is", () => {
  let fake: FakeCohere;
  let server: TestServer;

  /** The scripted turns by their user message: a case that fails leaves nothing queued for the next. */
  const scripts = new Map<string, { step: ScriptedReply; answer: string }>();

  beforeAll(async () => {
    ({ fake, server } = await startChatRig());
    fake.setFallback((request) => reply(request));
  });
  afterAll(async () => {
    await server?.close();
    await fake?.close();
  });

  function reply(request: RecordedRequest): ScriptedReply {
    const messages = request.body.messages;
    const user = messages.findLast((message) => message.role === "user");
    const script = scripts.get(typeof user?.content === "string" ? user.content : "");
    if (!script) return textReply("unscripted");
    return messages.at(-1)?.role === "tool" ? textReply(script.answer) : script.step;
  }

  async function send(user: TestUser, input: Record<string, unknown>): Promise<Response> {
    return (await user.gql(SEND, { input })) as Response;
  }

  function payloadOf(response: Response): Payload {
    expect(response.errors, JSON.stringify(response.errors)).toBeUndefined();
    return response.data!.sendMessage;
  }

  it.each(CASES)("should store and answer a turn whose model sent $name, and answer its retry", async (testCase) => {
    const user = await newUser(server, "model-output");
    const clientMessageId = randomUUID();
    const input = { content: `odd model output: ${testCase.name}`, clientMessageId };
    scripts.set(input.content, { step: testCase.step, answer: testCase.answer ?? "All done." });

    const payload = payloadOf(await send(user, input));
    expect(payload.userMessage.content).toBe(input.content);
    expect(payload.turn).toEqual({ status: "COMPLETED", stopCode: null });
    expect(payload.reply).not.toBeNull();
    testCase.check(payload);

    const rows = await messagesIn(server.db, payload.conversation.id);
    expect(rows[0]).toMatchObject({ role: "user", content: input.content });
    for (const row of rows) {
      expect(storable(row.content), row.content).toBe(true);
      expect(storable(row.toolPlan ?? ""), row.toolPlan ?? "").toBe(true);
      expect(storable(row.toolCallId ?? "")).toBe(true);
      expect(storable(JSON.stringify(row.toolCalls ?? null))).toBe(true);
    }

    // The same clientMessageId again: the finished turn as it was, no model call, no 500.
    const requestsBefore = fake.requests.length;
    const again = payloadOf(await send(user, input));
    expect(again).toEqual(payload);
    expect(fake.requests.length).toBe(requestsBefore);
  });

  it("should answer ASSISTANT_UNAVAILABLE with the user's message kept when tool arguments are too long to use, and resume on a retry", async () => {
    const user = await newUser(server, "model-output-unusable");
    const input = { content: "arguments far too long", clientMessageId: randomUUID() };
    const longArgs = JSON.stringify({ title: "t".repeat(30_000) });
    scripts.set(input.content, { step: toolCallReply([{ name: "add_task", args: longArgs }]), answer: "never" });

    const failed = await send(user, input);
    expect(failed.errors).toHaveLength(1);
    expect(failed.errors![0]!.extensions).toMatchObject({ code: "ASSISTANT_UNAVAILABLE", retryable: true });
    const conversationId = failed.errors![0]!.extensions!.conversationId as string;
    const rows = await messagesIn(server.db, conversationId);
    expect(rows.map((row) => [row.role, row.content])).toEqual([["user", input.content]]);
    expect(await server.db.task.count({ where: { userId: user.id } })).toBe(0);

    scripts.set(input.content, { step: toolCallReply([{ name: "add_task", args: { title: "short" } }]), answer: "Added." });
    const resumed = payloadOf(await send(user, input));
    expect(resumed.turn).toEqual({ status: "COMPLETED", stopCode: null });
    expect(resumed.reply?.content).toBe("Added.");
    expect(resumed.toolCalls.map((call) => call.result?.title)).toEqual(["short"]);
  });

  it("should send the model's next call the sanitised ids, each answered by its tool result", async () => {
    const user = await newUser(server, "model-output-wire");
    scripts.set("list them", { step: toolCallReply([{ id: "bad\u0000id", name: "list_tasks", args: {} }]), answer: "ok" });
    const requestsBefore = fake.requests.length;
    payloadOf(await send(user, { content: "list them" }));
    const followUp = fake.requests[requestsBefore + 1]!.body.messages;
    const step = followUp.find((message) => message.role === "assistant" && message.tool_calls);
    const id = step!.tool_calls![0]!.id;
    expect(storable(id)).toBe(true);
    expect(followUp.find((message) => message.role === "tool")?.tool_call_id).toBe(id);
  });
});
