import { randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { AssistantDeps } from "../../src/chat/turn-run.js";
import type { Db } from "../../src/db/client.js";
import type { Message } from "../../src/generated/prisma/client.js";
import type { Logger } from "../../src/lib/logger.js";
import { toGlobalId } from "../../src/lib/ids.js";
import { cohereAssistant, messagesIn, sendMessage, startChatRig, type MessageView, type SendPayload, type SendResponse } from "../helpers/chat.js";
import { testDb } from "../helpers/db.js";
import {
  errorReply,
  startFakeCohere,
  textReply,
  toolCallReply,
  type FakeCohere,
  type RecordedRequest,
  type ScriptedReply,
  type WireMessage,
} from "../helpers/fake-cohere.js";
import { capturingLogger, newUser, startTestServer, testAssistant, type TestServer, type TestUser } from "../helpers/server.js";

/** Distinctive, so a leak into a log line or a response is unmistakable. */
const API_KEY = `co-test-${randomUUID()}`;

const CONVERSATION = /* GraphQL */ `
  query Conversation($id: ID!) {
    conversation(id: $id) {
      id
      title
      messages {
        edges {
          node {
            id
            role
            content
            seq
          }
        }
      }
    }
  }
`;

const CREATE_CONVERSATION = /* GraphQL */ `
  mutation {
    createConversation {
      id
    }
  }
`;

interface Rig {
  fake: FakeCohere;
  server: TestServer;
  deps: AssistantDeps;
}

/** Everything a test starts, closed in afterAll (servers before the fakes they call). */
const disposables: { close(): Promise<void> }[] = [];

/** Registers `resource` for afterAll and returns it with a close() that runs at most once, so a test may close it early. */
function disposable<T extends { close(): Promise<void> }>(resource: T): T {
  let closing: Promise<void> | undefined;
  const close = () => (closing ??= resource.close());
  disposables.push({ close });
  return { ...resource, close };
}
let db: Db;

beforeAll(() => {
  db = testDb();
});

afterAll(async () => {
  const failures: unknown[] = [];
  for (const resource of disposables.reverse()) {
    try {
      await resource.close();
    } catch (error) {
      failures.push(error);
    }
  }
  await db.$disconnect();
  if (failures.length > 0) throw new AggregateError(failures, "closing the test servers failed");
});

/** A fake Cohere and an API server whose assistant talks to it through the real SDK. */
async function rig(overrides: Partial<AssistantDeps> = {}, options: { logger?: Logger } = {}): Promise<Rig> {
  const { fake, server, deps } = await startChatRig({ apiKey: API_KEY, db, logger: options.logger, assistant: overrides });
  return { fake: disposable(fake), server: disposable(server), deps };
}

function payloadOf(response: SendResponse): SendPayload {
  expect(response.errors).toBeUndefined();
  const payload = response.data?.sendMessage;
  expect(payload).toBeDefined();
  return payload as SendPayload;
}

function onlyError(response: SendResponse) {
  expect(response.errors).toHaveLength(1);
  return response.errors![0]!;
}

function rolesAndSeqs(messages: readonly MessageView[]): [string, number][] {
  return messages.map((m) => [m.role, m.seq]);
}

/** Every message row the user has, in every conversation. */
function rowsOf(userId: string): Promise<Message[]> {
  return db.message.findMany({ where: { userId }, orderBy: [{ conversationId: "asc" }, { seq: "asc" }] });
}

function lastMessage(request: RecordedRequest): WireMessage {
  const last = request.body.messages.at(-1);
  if (!last) throw new Error("a request without messages");
  return last;
}

function withDelay(reply: ScriptedReply, delayMs: number): ScriptedReply {
  return { ...reply, delayMs };
}

describe("sendMessage reliability", () => {
  describe("transient model failures", () => {
    it("should honour Retry-After on a 429 and then succeed", async () => {
      const { fake, server } = await rig();
      const user = await newUser(server);
      const arrivals: number[] = [];
      fake.enqueue(
        () => {
          arrivals.push(performance.now());
          return errorReply(429, "rate limited", { "Retry-After": "1" });
        },
        () => {
          arrivals.push(performance.now());
          return textReply("Hello after the rate limit.");
        },
      );

      const payload = payloadOf(await sendMessage(user, { content: "hello" }));

      expect(payload.reply?.content).toBe("Hello after the rate limit.");
      expect(rolesAndSeqs(payload.messages)).toEqual([
        ["USER", 1],
        ["ASSISTANT", 2],
      ]);
      expect(fake.requests).toHaveLength(2);
      expect(arrivals).toHaveLength(2);
      // Behavioural bound: the server said "wait 1 s", so the retry must not come sooner.
      expect(arrivals[1]! - arrivals[0]!).toBeGreaterThanOrEqual(900);
      // The retry is the same request again.
      expect(fake.requests[1]!.body.messages).toEqual(fake.requests[0]!.body.messages);
    });

    it("should retry a 503 and then succeed", async () => {
      const { fake, server } = await rig();
      const user = await newUser(server);
      fake.enqueue(errorReply(503, "overloaded"), textReply("Back again."));

      const payload = payloadOf(await sendMessage(user, { content: "are you there?" }));

      expect(payload.reply?.content).toBe("Back again.");
      expect(fake.requests).toHaveLength(2);
      const rows = await rowsOf(user.id);
      expect(rows.map((m) => [m.role, m.seq, m.content])).toEqual([
        ["user", 1, "are you there?"],
        ["assistant", 2, "Back again."],
      ]);
    });
  });

  describe("a model that keeps failing", () => {
    it("should answer ASSISTANT_UNAVAILABLE (retryable, no internals), keep the user message and make nothing up", async () => {
      const { fake, server, deps } = await rig();
      const user = await newUser(server);
      fake.setFallback(errorReply(500, "internal boom in the model cluster"));

      const response = await sendMessage(user, { content: "plan my day" });

      expect(response.data).toBeNull();
      const error = onlyError(response);
      expect(error.path).toEqual(["sendMessage"]);
      expect(error.extensions?.code).toBe("ASSISTANT_UNAVAILABLE");
      expect(error.extensions?.retryable).toBe(true);
      expect(typeof error.extensions?.conversationId).toBe("string");
      expect(error.extensions?.stack).toBeUndefined();
      expect(error.extensions?.exception).toBeUndefined();
      const text = JSON.stringify(response);
      expect(text).not.toMatch(/stack/i);
      expect(text).not.toMatch(/\bat .+:\d+:\d+/);
      expect(text).not.toContain("internal boom");
      expect(text).not.toMatch(/Status code|CohereError|InternalServerError/);
      expect(text).not.toContain(fake.baseUrl.replace("http://", ""));
      expect(text).not.toContain(API_KEY);

      // The user message is kept; no assistant message was invented.
      const conversation = await user.gql(CONVERSATION, { id: error.extensions?.conversationId });
      expect(conversation.errors).toBeUndefined();
      expect(conversation.data?.conversation.messages.edges.map((e: { node: MessageView }) => [e.node.role, e.node.seq, e.node.content])).toEqual([
        ["USER", 1, "plan my day"],
      ]);
      const rows = await rowsOf(user.id);
      expect(rows.map((m) => m.role)).toEqual(["user"]);
      expect(error.extensions?.userMessageId).toBe(toGlobalId("Message", rows[0]!.id));

      const maxRetries = deps.retryPolicy?.maxRetries;
      expect(maxRetries).toBeGreaterThan(0);
      expect(fake.requests).toHaveLength(1 + maxRetries!);
    });
  });

  describe("timeouts", () => {
    it("should end a turn whose model call times out with a stored stop message and ASSISTANT_TIMEOUT beside the payload", async () => {
      const { fake, server } = await rig({ callTimeoutMs: 300 });
      const user = await newUser(server);
      fake.enqueue(withDelay(textReply("Too late to matter."), 2000));

      const response = await sendMessage(user, { content: "slow question" });

      const error = onlyError(response);
      expect(error.extensions?.code).toBe("ASSISTANT_TIMEOUT");
      expect(error.path).toEqual(["sendMessage"]);
      const payload = response.data?.sendMessage;
      expect(payload).toBeDefined();
      expect(payload!.reply).not.toBeNull();
      expect(payload!.reply!.role).toBe("ASSISTANT");
      expect(payload!.reply!.content).toMatch(/stopped/i);
      expect(payload!.reply!.content).not.toContain("Too late to matter.");
      expect(error.message).toBe(payload!.reply!.content);
      expect(rolesAndSeqs(payload!.messages)).toEqual([
        ["USER", 1],
        ["ASSISTANT", 2],
      ]);
      expect(payload!.messages.at(-1)!.id).toBe(payload!.reply!.id);

      const rows = await rowsOf(user.id);
      expect(rows.map((m) => [m.role, m.content, m.stopCode])).toEqual([
        ["user", "slow question", null],
        ["assistant", payload!.reply!.content, "ASSISTANT_TIMEOUT"],
      ]);
    });

    it("should end a turn that runs past the per-turn time limit after several steps, keeping every finished step", async () => {
      const stepDelayMs = 300;
      const { fake, server, deps } = await rig({ turnTimeoutMs: 1500, callTimeoutMs: 5000 });
      const user = await newUser(server);
      let step = 0;
      fake.setFallback(() => {
        step += 1;
        return withDelay(toolCallReply([{ id: `call_step_${step}`, name: "add_task", args: { title: `Step ${step}` } }]), stepDelayMs);
      });

      const response = await sendMessage(user, { content: "do many things" });

      const error = onlyError(response);
      expect(error.extensions?.code).toBe("ASSISTANT_TIMEOUT");
      const payload = response.data?.sendMessage;
      expect(payload).toBeDefined();
      expect(payload!.reply?.content).toMatch(/stopped/i);
      expect(payload!.reply?.content).toMatch(/in time/);

      // It stopped at the time bound, not the step bound, after more than one model call.
      expect(fake.requests.length).toBeGreaterThanOrEqual(2);
      expect(fake.requests.length).toBeLessThan(deps.maxSteps);
      const steps = payload!.messages.filter((m) => m.role === "ASSISTANT" && (m.toolCalls?.length ?? 0) > 0);
      const results = payload!.messages.filter((m) => m.role === "TOOL");
      expect(steps.length).toBeGreaterThanOrEqual(1);
      // Every stored step has its result: nothing is left half done.
      expect(results.map((m) => m.toolCallId)).toEqual(steps.flatMap((m) => m.toolCalls!.map((c) => c.id)));
      expect(payload!.messages[0]!.role).toBe("USER");
      expect(payload!.messages.at(-1)!.id).toBe(payload!.reply!.id);
      expect(payload!.messages.map((m) => m.seq)).toEqual(payload!.messages.map((_, i) => i + 1));

      const tasks = await user.gql(`{ tasks { edges { node { title } } } }`);
      expect(tasks.data?.tasks.edges).toHaveLength(results.length);
      const rows = await rowsOf(user.id);
      expect(rows.at(-1)?.stopCode).toBe("ASSISTANT_TIMEOUT");
      expect(rows).toHaveLength(payload!.messages.length);
    });
  });

  describe("without COHERE_API_KEY", () => {
    let server: TestServer;

    beforeAll(async () => {
      server = disposable(await startTestServer({ db, assistant: testAssistant({ model: undefined }) }));
    });

    it("should answer ASSISTANT_UNAVAILABLE with 'COHERE_API_KEY is not set' and keep the user message", async () => {
      const user = await newUser(server);

      const response = await sendMessage(user, { content: "hello?" });

      expect(response.data).toBeNull();
      const error = onlyError(response);
      expect(error.message).toBe("COHERE_API_KEY is not set");
      expect(error.extensions?.code).toBe("ASSISTANT_UNAVAILABLE");
      expect(error.extensions?.retryable).toBe(false);
      const rows = await rowsOf(user.id);
      expect(rows.map((m) => [m.role, m.content])).toEqual([["user", "hello?"]]);
      expect(error.extensions?.conversationId).toBe(toGlobalId("Conversation", rows[0]!.conversationId));
    });

    it("should keep the rest of the API working", async () => {
      const user = await newUser(server);
      await sendMessage(user, { content: "hello?" });

      const added = await user.gql(`mutation { addTask(input: { title: "Works without a key" }) { id title completed } }`);
      expect(added.errors).toBeUndefined();
      expect(added.data?.addTask).toMatchObject({ title: "Works without a key", completed: false });
      const tasks = await user.gql(`{ tasks { edges { node { id title } } } }`);
      expect(tasks.errors).toBeUndefined();
      expect(tasks.data?.tasks.edges).toEqual([{ node: { id: added.data?.addTask.id, title: "Works without a key" } }]);
    });
  });

  describe("idempotency", () => {
    it("should return the finished turn again for a repeated clientMessageId without calling the model", async () => {
      const { fake, server } = await rig();
      const user = await newUser(server);
      const clientMessageId = `cm-${randomUUID()}`;
      fake.enqueue(toolCallReply([{ id: "call_once", name: "add_task", args: { title: "Only once" } }]), textReply("Added Only once."));

      const first = payloadOf(await sendMessage(user, { content: "add only once", clientMessageId }));
      const requestsAfterFirst = fake.requests.length;
      const second = payloadOf(await sendMessage(user, { content: "add only once", clientMessageId }));

      expect(second).toEqual(first);
      expect(second.userMessage.id).toBe(first.userMessage.id);
      expect(second.reply?.id).toBe(first.reply?.id);
      expect(second.messages.map((m) => m.id)).toEqual(first.messages.map((m) => m.id));
      expect(fake.requests).toHaveLength(requestsAfterFirst);

      expect(await db.message.count({ where: { userId: user.id, clientMessageId } })).toBe(1);
      expect(await db.message.count({ where: { userId: user.id, role: "user" } })).toBe(1);
      expect(await db.task.count({ where: { userId: user.id } })).toBe(1);
    });

    it("should resume a failed turn on retry without storing the user message again", async () => {
      const { fake, server } = await rig();
      const user = await newUser(server);
      const clientMessageId = `cm-${randomUUID()}`;
      fake.setFallback(errorReply(500));

      const failed = await sendMessage(user, { content: "remember me", clientMessageId });
      const error = onlyError(failed);
      expect(error.extensions?.code).toBe("ASSISTANT_UNAVAILABLE");
      const conversationId = error.extensions?.conversationId as string;
      expect(typeof conversationId).toBe("string");
      const failedCalls = fake.requests.length;

      fake.setFallback(undefined);
      fake.enqueue(textReply("I remember you."));
      const payload = payloadOf(await sendMessage(user, { content: "remember me", clientMessageId, conversationId }));

      expect(payload.conversation.id).toBe(conversationId);
      expect(payload.userMessage.id).toBe(error.extensions?.userMessageId);
      expect(payload.reply?.content).toBe("I remember you.");
      expect(rolesAndSeqs(payload.messages)).toEqual([
        ["USER", 1],
        ["ASSISTANT", 2],
      ]);
      expect(fake.requests).toHaveLength(failedCalls + 1);
      const history = fake.requests.at(-1)!.body.messages;
      expect(history.map((m) => m.role)).toEqual(["system", "user"]);
      expect(history.filter((m) => m.role === "user" && m.content === "remember me")).toHaveLength(1);

      expect(await db.message.count({ where: { userId: user.id, clientMessageId } })).toBe(1);
      expect(await db.message.count({ where: { userId: user.id, role: "user" } })).toBe(1);
      expect(await db.conversation.count({ where: { userId: user.id } })).toBe(1);
    });

    it("should resume a turn that failed after a tool step without running that step again", async () => {
      const { fake, server } = await rig();
      const user = await newUser(server);
      const clientMessageId = `cm-${randomUUID()}`;
      fake.enqueue(toolCallReply([{ id: "call_mid", name: "add_task", args: { title: "Mid-turn task" } }], "I will add it."));
      fake.setFallback(errorReply(500));

      const failed = await sendMessage(user, { content: "add mid-turn task", clientMessageId });
      const error = onlyError(failed);
      expect(error.extensions?.code).toBe("ASSISTANT_UNAVAILABLE");
      expect(await db.task.count({ where: { userId: user.id } })).toBe(1);

      fake.setFallback(undefined);
      fake.enqueue(textReply("Added Mid-turn task."));
      const payload = payloadOf(
        await sendMessage(user, { content: "add mid-turn task", clientMessageId, conversationId: error.extensions?.conversationId }),
      );

      expect(rolesAndSeqs(payload.messages)).toEqual([
        ["USER", 1],
        ["ASSISTANT", 2],
        ["TOOL", 3],
        ["ASSISTANT", 4],
      ]);
      expect(payload.reply?.content).toBe("Added Mid-turn task.");
      expect(payload.toolCalls).toHaveLength(1);
      expect(payload.toolCalls[0]).toMatchObject({ id: "call_mid", name: "add_task", error: null });
      expect(payload.toolCalls[0]!.result).toMatchObject({ title: "Mid-turn task" });

      // The step was not executed twice.
      const tasks = await db.task.findMany({ where: { userId: user.id } });
      expect(tasks.map((t) => t.title)).toEqual(["Mid-turn task"]);
      expect(await db.message.count({ where: { userId: user.id, role: "tool" } })).toBe(1);

      // The resumed call saw the earlier step and its result.
      const history = fake.requests.at(-1)!.body.messages;
      expect(history.map((m) => m.role)).toEqual(["system", "user", "assistant", "tool"]);
      expect(history[2]).toMatchObject({
        role: "assistant",
        tool_plan: "I will add it.",
        tool_calls: [{ id: "call_mid", type: "function", function: { name: "add_task", arguments: '{"title":"Mid-turn task"}' } }],
      });
      expect(history[3]).toMatchObject({
        role: "tool",
        tool_call_id: "call_mid",
        content: [{ type: "document", document: { data: { title: "Mid-turn task", id: payload.toolCalls[0]!.result!.id } } }],
      });
    });

    it("should not answer a failed message again once a later message in its conversation was answered", async () => {
      const { fake, server } = await rig();
      const user = await newUser(server);
      const clientMessageId = `cm-${randomUUID()}`;
      fake.setFallback(errorReply(500));
      const failed = await sendMessage(user, { content: "first, unanswered", clientMessageId });
      const error = onlyError(failed);
      expect(error.extensions?.code).toBe("ASSISTANT_UNAVAILABLE");
      const conversationId = error.extensions?.conversationId as string;
      fake.setFallback(undefined);
      fake.enqueue(textReply("Answering both."));
      const later = payloadOf(await sendMessage(user, { content: "second", conversationId }));
      // The later turn showed the model the earlier message.
      expect(
        fake.requests
          .at(-1)!
          .body.messages.slice(1)
          .map((m) => [m.role, m.content]),
      ).toEqual([
        ["user", "first, unanswered"],
        ["user", "second"],
      ]);
      const rowsBefore = await messagesIn(db, conversationId);
      const requestsBefore = fake.requests.length;
      fake.setFallback(textReply("An answer out of place."));

      const retries = [];
      for (let i = 0; i < 2; i += 1) {
        retries.push(payloadOf(await sendMessage(user, { content: "first, unanswered", clientMessageId, conversationId })));
      }

      // The turn is returned as it stands: no model call, nothing stored after the later turn.
      expect(fake.requests).toHaveLength(requestsBefore);
      expect(await messagesIn(db, conversationId)).toEqual(rowsBefore);
      for (const retry of retries) {
        expect(retry.userMessage.id).toBe(error.extensions?.userMessageId);
        expect(rolesAndSeqs(retry.messages)).toEqual([["USER", 1]]);
        expect(retry.reply).toBeNull();
      }
      expect(retries[1]).toEqual(retries[0]);
      expect(later.reply?.content).toBe("Answering both.");
    });

    it("should store the message once when the same clientMessageId is sent twice at once", async () => {
      const { fake, server } = await rig();
      const user = await newUser(server);
      const clientMessageId = `cm-${randomUUID()}`;
      fake.enqueue(withDelay(textReply("Only one answer."), 300));

      const [one, two] = await Promise.all([
        sendMessage(user, { content: "double click", clientMessageId }),
        sendMessage(user, { content: "double click", clientMessageId }),
      ]);

      const first = payloadOf(one);
      const second = payloadOf(two);
      expect(second).toEqual(first);
      expect(first.reply?.content).toBe("Only one answer.");
      expect(fake.requests).toHaveLength(1);
      expect(await db.message.count({ where: { userId: user.id, clientMessageId } })).toBe(1);
      expect(await db.conversation.count({ where: { userId: user.id } })).toBe(1);
      expect((await rowsOf(user.id)).map((m) => [m.role, m.seq])).toEqual([
        ["user", 1],
        ["assistant", 2],
      ]);
    });

    it("should reject a reused clientMessageId with different content and store nothing", async () => {
      const { fake, server } = await rig();
      const user = await newUser(server);
      const clientMessageId = `cm-${randomUUID()}`;
      fake.enqueue(textReply("First answer."));
      const first = payloadOf(await sendMessage(user, { content: "first content", clientMessageId }));
      const rowsBefore = await rowsOf(user.id);
      const requestsBefore = fake.requests.length;

      for (const input of [
        { content: "different content", clientMessageId },
        { content: "different content", clientMessageId, conversationId: first.conversation.id },
      ]) {
        const response = await sendMessage(user, input);
        expect(response.data).toBeNull();
        const error = onlyError(response);
        expect(error.extensions?.code).toBe("BAD_USER_INPUT");
        expect(error.extensions?.field).toBe("input.clientMessageId");
        expect(error.message).toContain("input.clientMessageId");
      }

      expect(await rowsOf(user.id)).toEqual(rowsBefore);
      expect(await db.conversation.count({ where: { userId: user.id } })).toBe(1);
      expect(fake.requests).toHaveLength(requestsBefore);
    });
  });

  describe("concurrency", () => {
    it("should run two sends on one conversation one after the other, with dense seqs and no interleaving", async () => {
      const { fake, server } = await rig();
      const user = await newUser(server);
      const created = await user.gql(CREATE_CONVERSATION);
      const conversationId = created.data?.createConversation.id as string;
      let calls = 0;
      // Each turn: add a task named after the message, then answer. The very first call is slow.
      fake.setFallback((request) => {
        calls += 1;
        const last = lastMessage(request);
        const reply =
          last.role === "user"
            ? toolCallReply([{ id: `call_${String(last.content).replace(/\W/g, "_")}`, name: "add_task", args: { title: String(last.content) } }])
            : textReply(`Done: ${request.body.messages.filter((m) => m.role === "user").at(-1)?.content as string}`);
        return calls === 1 ? withDelay(reply, 500) : reply;
      });

      const [one, two] = await Promise.all([
        sendMessage(user, { content: "first message", conversationId }),
        sendMessage(user, { content: "second message", conversationId }),
      ]);
      const payloads = [payloadOf(one), payloadOf(two)].sort((a, b) => a.userMessage.seq - b.userMessage.seq);
      const [a, b] = payloads as [SendPayload, SendPayload];

      expect(rolesAndSeqs(a.messages)).toEqual([
        ["USER", 1],
        ["ASSISTANT", 2],
        ["TOOL", 3],
        ["ASSISTANT", 4],
      ]);
      expect(rolesAndSeqs(b.messages)).toEqual([
        ["USER", 5],
        ["ASSISTANT", 6],
        ["TOOL", 7],
        ["ASSISTANT", 8],
      ]);
      expect(a.reply?.content).toBe(`Done: ${a.userMessage.content}`);
      expect(b.reply?.content).toBe(`Done: ${b.userMessage.content}`);

      const rows = await messagesIn(db, conversationId);
      expect(rows.map((m) => m.seq)).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
      expect(rows.map((m) => toGlobalId("Message", m.id))).toEqual([...a.messages, ...b.messages].map((m) => m.id));

      // Seq order is the order the model saw: turn B's first call carried turn A's whole exchange.
      expect(fake.requests).toHaveLength(4);
      const firstOfB = fake.requests.find((r) => lastMessage(r).role === "user" && lastMessage(r).content === b.userMessage.content);
      expect(firstOfB).toBeDefined();
      const seen = firstOfB!.body.messages.slice(1);
      expect(seen.map((m) => m.role)).toEqual(["user", "assistant", "tool", "assistant", "user"]);
      expect(seen[0]).toMatchObject({ role: "user", content: a.userMessage.content });
      expect(seen[1]!.tool_calls?.[0]?.id).toBe(a.toolCalls[0]!.id);
      expect(seen[2]).toMatchObject({ role: "tool", tool_call_id: a.toolCalls[0]!.id });
      expect(seen[3]).toMatchObject({ role: "assistant", content: a.reply!.content });
      expect(seen[4]).toMatchObject({ role: "user", content: b.userMessage.content });
      // And turn A never saw turn B's message.
      for (const request of fake.requests.slice(0, 2)) {
        expect(request.body.messages.some((m) => m.content === b.userMessage.content)).toBe(false);
      }
    });

    it("should run turns of two different conversations in parallel", async () => {
      const { fake, server } = await rig();
      const user = await newUser(server);
      let inFlight = 0;
      let maxInFlight = 0;
      const delayMs = 1000;
      fake.setFallback((request) => {
        inFlight += 1;
        maxInFlight = Math.max(maxInFlight, inFlight);
        setTimeout(() => {
          inFlight -= 1;
        }, delayMs);
        return withDelay(textReply(`Answer to ${String(lastMessage(request).content)}`), delayMs);
      });

      const [one, two] = await Promise.all([sendMessage(user, { content: "conversation one" }), sendMessage(user, { content: "conversation two" })]);

      const first = payloadOf(one);
      const second = payloadOf(two);
      expect(first.conversation.id).not.toBe(second.conversation.id);
      expect(first.reply?.content).toBe("Answer to conversation one");
      expect(second.reply?.content).toBe("Answer to conversation two");
      expect(fake.requests).toHaveLength(2);
      expect(maxInFlight).toBe(2);
    });
  });

  describe("a restart", () => {
    it("should send the full prior history when a conversation resumes on a new server", async () => {
      const fake = disposable(await startFakeCohere());
      const server1 = disposable(await startTestServer({ assistant: cohereAssistant(fake, {}, API_KEY) }));
      const user1 = await newUser(server1, "restart");
      fake.enqueue(
        toolCallReply([{ id: "call_before_restart", name: "add_task", args: { title: "Survive restart" } }], "I will add the task."),
        textReply("Added Survive restart."),
      );
      const before = payloadOf(await sendMessage(user1, { content: "add survive restart" }));
      const taskId = before.toolCalls[0]!.result!.id;
      await server1.close(); // and its own database client

      const server2 = disposable(await startTestServer({ assistant: cohereAssistant(fake, {}, API_KEY) }));
      const user2: TestUser = { ...user1, gql: (query, variables) => server2.request(query, variables, user1.token) };
      fake.enqueue(textReply("You have one task."));
      const after = payloadOf(await sendMessage(user2, { content: "what do I have?", conversationId: before.conversation.id }));

      expect(rolesAndSeqs(after.messages)).toEqual([
        ["USER", 5],
        ["ASSISTANT", 6],
      ]);
      expect(fake.requests).toHaveLength(3);
      const history = fake.requests[2]!.body.messages;
      expect(history[0]?.role).toBe("system");
      expect(history.slice(1)).toEqual([
        { role: "user", content: "add survive restart" },
        {
          role: "assistant",
          tool_plan: "I will add the task.",
          tool_calls: [{ id: "call_before_restart", type: "function", function: { name: "add_task", arguments: '{"title":"Survive restart"}' } }],
        },
        {
          role: "tool",
          tool_call_id: "call_before_restart",
          content: [{ type: "document", document: { data: before.toolCalls[0]!.result } }],
        },
        { role: "assistant", content: "Added Survive restart." },
        { role: "user", content: "what do I have?" },
      ]);
      expect(history[3]?.content).toMatchObject([{ document: { data: { id: taskId, title: "Survive restart" } } }]);
      // What server 1 sent within the first turn is what server 2 sends as its prefix.
      expect(history.slice(1, 4)).toEqual(fake.requests[1]!.body.messages.slice(1));
    });
  });

  describe("input validation", () => {
    let rigged: Rig;

    beforeAll(async () => {
      rigged = await rig();
    });

    async function expectNothingStored(user: TestUser) {
      expect(await rowsOf(user.id)).toEqual([]);
      expect(await db.conversation.count({ where: { userId: user.id } })).toBe(0);
    }

    it("should answer NOT_FOUND for another user's conversation and store nothing", async () => {
      const owner = await newUser(rigged.server);
      const intruder = await newUser(rigged.server);
      const created = await owner.gql(CREATE_CONVERSATION);
      const conversationId = created.data?.createConversation.id as string;
      const requestsBefore = rigged.fake.requests.length;

      for (const clientMessageId of [undefined, `cm-${randomUUID()}`]) {
        const response = await sendMessage(intruder, { content: "let me in", conversationId, clientMessageId });
        expect(response.data).toBeNull();
        expect(onlyError(response).extensions?.code).toBe("NOT_FOUND");
      }

      await expectNothingStored(intruder);
      expect(await messagesIn(db, conversationId)).toEqual([]);
      expect(rigged.fake.requests).toHaveLength(requestsBefore);
    });

    it("should answer NOT_FOUND for a conversation that does not exist and store nothing", async () => {
      const user = await newUser(rigged.server);
      const response = await sendMessage(user, { content: "hello", conversationId: toGlobalId("Conversation", randomUUID()) });
      expect(response.data).toBeNull();
      expect(onlyError(response).extensions?.code).toBe("NOT_FOUND");
      await expectNothingStored(user);
    });

    it("should reject a malformed conversationId naming input.conversationId", async () => {
      const user = await newUser(rigged.server);
      const taskId = toGlobalId("Task", randomUUID());
      for (const conversationId of ["not-an-id", "", taskId, randomUUID()]) {
        const response = await sendMessage(user, { content: "hello", conversationId });
        expect(response.data).toBeNull();
        const error = onlyError(response);
        expect(error.extensions?.code).toBe("BAD_USER_INPUT");
        expect(error.extensions?.field).toBe("input.conversationId");
        expect(error.message).toContain("input.conversationId");
      }
      await expectNothingStored(user);
    });

    it("should reject empty, blank, over-long and NUL-containing content naming input.content and store nothing", async () => {
      const user = await newUser(rigged.server);
      const requestsBefore = rigged.fake.requests.length;
      for (const content of ["", "   ", " \n\t ", "x".repeat(5001), "😀".repeat(5001), "before\u0000after"]) {
        const response = await sendMessage(user, { content });
        expect(response.data).toBeNull();
        const error = onlyError(response);
        expect(error.extensions?.code).toBe("BAD_USER_INPUT");
        expect(error.extensions?.field).toBe("input.content");
        expect(error.message).toContain("input.content");
      }
      await expectNothingStored(user);
      expect(rigged.fake.requests).toHaveLength(requestsBefore);
    });

    it("should accept content of exactly 5000 characters", async () => {
      const user = await newUser(rigged.server);
      for (const content of ["y".repeat(5000), "😀".repeat(5000)]) {
        rigged.fake.enqueue(textReply("Long message received."));
        const payload = payloadOf(await sendMessage(user, { content }));
        expect(payload.userMessage.content).toBe(content);
        expect(lastMessage(rigged.fake.requests.at(-1)!).content).toBe(content);
      }
      const rows = await rowsOf(user.id);
      expect(rows.filter((m) => m.role === "user").map((m) => [...m.content].length)).toEqual([5000, 5000]);
    });

    it("should reject a clientMessageId over 100 characters (or empty) and accept one of 100", async () => {
      const user = await newUser(rigged.server);
      for (const clientMessageId of ["k".repeat(101), ""]) {
        const response = await sendMessage(user, { content: "hello", clientMessageId });
        expect(response.data).toBeNull();
        const error = onlyError(response);
        expect(error.extensions?.code).toBe("BAD_USER_INPUT");
        expect(error.extensions?.field).toBe("input.clientMessageId");
        expect(error.message).toContain("input.clientMessageId");
      }
      await expectNothingStored(user);

      rigged.fake.enqueue(textReply("Fine."));
      const clientMessageId = "k".repeat(100);
      const payload = payloadOf(await sendMessage(user, { content: "hello", clientMessageId }));
      expect(payload.reply?.content).toBe("Fine.");
      expect(await db.message.count({ where: { userId: user.id, clientMessageId } })).toBe(1);
    });
  });

  describe("conversation titles", () => {
    let rigged: Rig;

    beforeAll(async () => {
      rigged = await rig();
      rigged.fake.setFallback(textReply("Noted."));
    });

    it("should title a new conversation with its first message", async () => {
      const user = await newUser(rigged.server);
      const payload = payloadOf(await sendMessage(user, { content: "  Plan the garden party  " }));
      expect(payload.conversation.title).toBe("Plan the garden party");

      // Later messages leave the title as it was.
      const next = payloadOf(await sendMessage(user, { content: "and the invitations", conversationId: payload.conversation.id }));
      expect(next.conversation.title).toBe("Plan the garden party");
    });

    it("should truncate the title of a long first message", async () => {
      const user = await newUser(rigged.server);
      const content = "Please help me organise everything for the big family reunion next summer at the lake house, including food";
      const payload = payloadOf(await sendMessage(user, { content }));
      const title = payload.conversation.title!;
      expect([...title].length).toBeLessThanOrEqual(60);
      expect(title.endsWith("…")).toBe(true);
      expect(content.startsWith(title.slice(0, -1))).toBe(true);
      expect(title.length).toBeGreaterThan(40);

      const multiline = payloadOf(await sendMessage(user, { content: "Groceries\nmilk, eggs, bread" }));
      expect(multiline.conversation.title).toBe("Groceries");
    });
  });

  describe("the API key", () => {
    it("should be sent as a Bearer token and never logged, on success or failure", async () => {
      const { logger, lines } = capturingLogger();
      const { fake, server } = await rig({ callTimeoutMs: 1000 }, { logger });
      const user = await newUser(server);
      const responses: unknown[] = [];

      // Success after a retry.
      fake.enqueue(errorReply(429, "slow down", { "Retry-After": "0" }), textReply("Hi."));
      const ok = await sendMessage(user, { content: "hi" });
      payloadOf(ok);
      responses.push(ok);
      // A rejected key (not retryable).
      fake.enqueue(errorReply(401, "invalid api token"));
      responses.push(await sendMessage(user, { content: "unauthorised" }));
      // A model that keeps failing.
      fake.setFallback(errorReply(500, "still broken"));
      responses.push(await sendMessage(user, { content: "broken" }));
      fake.setFallback(undefined);
      // A timeout.
      fake.enqueue(withDelay(textReply("late"), 3000));
      responses.push(await sendMessage(user, { content: "timeout" }));
      // The model's host unreachable altogether.
      await fake.close();
      responses.push(await sendMessage(user, { content: "unreachable" }));

      expect(fake.requests.length).toBeGreaterThanOrEqual(8);
      for (const request of fake.requests) {
        expect(request.headers.authorization).toBe(`Bearer ${API_KEY}`);
      }
      const codes = responses.map((r) => (r as SendResponse).errors?.[0]?.extensions?.code);
      expect(codes).toEqual([undefined, "ASSISTANT_UNAVAILABLE", "ASSISTANT_UNAVAILABLE", "ASSISTANT_TIMEOUT", "ASSISTANT_UNAVAILABLE"]);

      // The failure paths were logged (so the check below looked at something) …
      const log = lines.join("\n");
      expect(log).toContain("retrying the model call");
      expect(log).toContain("the model is unavailable");
      expect(log).toContain("chat turn timed out");
      // … and neither the logs nor the responses carry the key.
      expect(log).not.toContain(API_KEY);
      expect(JSON.stringify(responses)).not.toContain(API_KEY);
    });
  });
});
