import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { OLDER_MESSAGES_NOTE, systemPreamble } from "../../src/chat/history.js";
import { COHERE_TOOLS } from "../../src/chat/model-call.js";
import { estimateTokens } from "../../src/chat/window.js";
import { createConversation } from "../../src/domain/conversations.js";
import { appendMessages, type NewMessage } from "../../src/domain/messages.js";
import { toGlobalId } from "../../src/lib/ids.js";
import { sendMessage, startChatRig } from "../helpers/chat.js";
import { textReply, type FakeCohere, type WireMessage } from "../helpers/fake-cohere.js";
import { newUser, type TestServer, type TestUser } from "../helpers/server.js";

/**
 * About 3,000 estimated tokens for the history, on top of what every call
 * sends whatever the history (the tools' schemas and the system message):
 * the window's budget counts those too, and they grow with the tools.
 */
const BUDGET = estimateTokens(JSON.stringify(COHERE_TOOLS)) + estimateTokens(systemPreamble({ now: new Date(), timezone: "UTC" }, true)) + 3000;
const EXCHANGES = 30;

/** One stored exchange: a question, a tool step with its result, an answer. About 250 estimated tokens. */
function exchange(n: number): NewMessage[] {
  const callId = `call_seed_${n}`;
  return [
    { role: "user", content: `Question ${n}: ${"please keep track of this for me. ".repeat(10)}` },
    {
      role: "assistant",
      content: "",
      toolPlan: `I will add task ${n}.`,
      toolCalls: [{ id: callId, type: "function", function: { name: "add_task", arguments: JSON.stringify({ title: `Task ${n}` }) } }],
    },
    { role: "tool", toolCallId: callId, content: JSON.stringify({ id: `t${n}`, title: `Task ${n}`, notes: "x".repeat(200) }) },
    { role: "assistant", content: `Answer ${n}: added Task ${n}.` },
  ];
}

describe("the context window", () => {
  let fake: FakeCohere;
  let server: TestServer;

  beforeAll(async () => {
    ({ fake, server } = await startChatRig({ assistant: { maxInputTokens: BUDGET } }));
  });
  afterAll(async () => {
    await server.close();
    await fake.close();
  });

  async function conversationWith(user: TestUser, exchanges: number): Promise<string> {
    const conversation = await createConversation(server.db, user.id, { title: "Long" });
    for (let n = 1; n <= exchanges; n += 1) {
      await server.db.$transaction((tx) => appendMessages(tx, user.id, conversation.id, exchange(n)));
    }
    return toGlobalId("Conversation", conversation.id);
  }

  /** Each tool message answers a call of the assistant step right before its run of tool messages, and every call is answered. */
  function expectToolPairsWhole(messages: readonly WireMessage[]): void {
    for (let i = 0; i < messages.length; i += 1) {
      const message = messages[i]!;
      if (message.role !== "assistant" || !message.tool_calls?.length) continue;
      const results = [];
      for (let j = i + 1; j < messages.length && messages[j]!.role === "tool"; j += 1) results.push(messages[j]!.tool_call_id);
      expect(results).toEqual(message.tool_calls.map((call) => call.id));
    }
    const called = new Set(messages.flatMap((m) => m.tool_calls?.map((call) => call.id) ?? []));
    for (const message of messages.filter((m) => m.role === "tool")) expect(called.has(message.tool_call_id!)).toBe(true);
  }

  it("should send the newest messages that fit the budget, starting at a question, with tool steps whole, and say that older ones exist", async () => {
    const user = await newUser(server);
    const conversationId = await conversationWith(user, EXCHANGES);
    fake.enqueue(textReply("You have many tasks; let me list them if you like."));

    const response = await sendMessage(user, { conversationId, content: "what did we do?" });

    expect(response.errors).toBeUndefined();
    expect(response.data?.sendMessage?.reply?.content).toBe("You have many tasks; let me list them if you like.");
    const sent = fake.requests.at(-1)!.body.messages;
    const [system, ...history] = sent;
    expect(system!.role).toBe("system");
    expect(system!.content).toContain(OLDER_MESSAGES_NOTE);
    expect(history.at(-1)).toEqual({ role: "user", content: "what did we do?" });
    expect(history.at(-2)).toEqual({ role: "assistant", content: `Answer ${EXCHANGES}: added Task ${EXCHANGES}.` });
    expect(history[0]!.role).toBe("user");
    expectToolPairsWhole(history);
    // A window, not the whole conversation: some exchanges are left out, the newest several are in.
    const questions = history.filter((m) => m.role === "user" && String(m.content).startsWith("Question "));
    expect(questions.length).toBeGreaterThanOrEqual(3);
    expect(questions.length).toBeLessThan(EXCHANGES);
    const numbers = questions.map((m) => Number(/^Question (\d+)/.exec(String(m.content))![1]));
    expect(numbers).toEqual(numbers.map((_, i) => EXCHANGES - numbers.length + 1 + i));
  });

  it("should send a short conversation whole, without the note", async () => {
    const user = await newUser(server);
    const conversationId = await conversationWith(user, 2);
    fake.enqueue(textReply("Two tasks."));

    const response = await sendMessage(user, { conversationId, content: "and now?" });

    expect(response.errors).toBeUndefined();
    const [system, ...history] = fake.requests.at(-1)!.body.messages;
    expect(system!.content).not.toContain(OLDER_MESSAGES_NOTE);
    expect(history).toHaveLength(2 * 4 + 1);
    expectToolPairsWhole(history);
  });
});
