import { randomUUID } from "node:crypto";
import type { Cohere } from "cohere-ai";
import type { Db } from "../db/client.js";
import { Bounds, charLength, rejectNul } from "../domain/bounds.js";
import { appendMessages } from "../domain/messages.js";
import { isUniqueViolation } from "../domain/prisma-errors.js";
import { takeToken, type RateLimit } from "../domain/rate-limits.js";
import { AppError, badInput, ErrorCode, rateLimited } from "../errors.js";
import type { Conversation, Message } from "../generated/prisma/client.js";
import type { Logger } from "../logger.js";
import { toGlobalId } from "../ids.js";
import {
  chatWithRetries,
  ModelTimeoutError,
  ModelUnavailableError,
  type ChatModel,
  type RetryPolicy,
} from "./cohere.js";
import { buildHistory, storedToolCalls, type StoredToolCall } from "./history.js";
import { acquireLease, leaseHandle, leaseNewConversation, type AcquireOptions, type Lease } from "./lease.js";
import { inputJsonSchema, isWriteTool, parseArguments, runTool, TOOLS, type ToolOutcome } from "./tools.js";

export interface AssistantDeps {
  /** Undefined when COHERE_API_KEY is unset: chat answers ASSISTANT_UNAVAILABLE, everything else works. */
  model: ChatModel | undefined;
  modelName: string;
  maxSteps: number;
  callTimeoutMs: number;
  turnTimeoutMs: number;
  clock: () => Date;
  logger: Logger;
  retryPolicy?: RetryPolicy;
  /** sendMessage calls per user, across all instances (CHAT_RATE_LIMIT, CHAT_RATE_BURST). Undefined: no limit. */
  rateLimit?: RateLimit | undefined;
}

export interface SendMessageInput {
  /** Raw conversation id; undefined starts a new conversation. */
  conversationId?: string | undefined;
  content: string;
  clientMessageId?: string | null | undefined;
}

export interface TurnResult {
  conversation: Conversation;
  userMessage: Message;
  /** Everything persisted in this turn, user message first, in seq order. */
  messages: Message[];
  reply: Message | null;
  /** Set when a bound ended the turn: the error code the response carries. */
  stopCode: string | null;
}

const COHERE_TOOLS: Cohere.ToolV2[] = TOOLS.map((tool) => ({
  type: "function",
  function: { name: tool.name, description: tool.description, parameters: inputJsonSchema(tool) },
}));

const BOUND_MESSAGES: Record<string, (detail: string) => string> = {
  [ErrorCode.ASSISTANT_STEP_LIMIT]: (detail) =>
    `I stopped before finishing: this request needed more than ${detail} steps. Changes made so far are kept; please check your tasks or rephrase.`,
  [ErrorCode.ASSISTANT_TIMEOUT]: () =>
    "I stopped before finishing: the assistant did not answer in time. Changes made so far are kept; please try again.",
  [ErrorCode.ASSISTANT_REPEATED_TOOL_CALL]: (detail) =>
    `I stopped before finishing: I was repeating the same action (${detail}). Changes made so far are kept; please check your tasks.`,
};

function titleFrom(content: string): string {
  const line = content.trim().split(/\r?\n/, 1)[0] ?? "";
  const chars = [...line];
  return chars.length <= 60 ? line : `${chars.slice(0, 59).join("").trimEnd()}…`;
}

function validate(input: SendMessageInput): { content: string; clientMessageId: string | null } {
  rejectNul("input.content", input.content);
  const length = charLength(input.content.trim());
  if (length < Bounds.messageContent.min) throw badInput("input.content", "must not be empty");
  if (charLength(input.content) > Bounds.messageContent.max) {
    throw badInput("input.content", `must be at most ${Bounds.messageContent.max} characters (got ${charLength(input.content)})`);
  }
  const clientMessageId = input.clientMessageId ?? null;
  if (clientMessageId !== null) {
    rejectNul("input.clientMessageId", clientMessageId);
    const idLength = charLength(clientMessageId);
    if (idLength < Bounds.clientMessageId.min || idLength > Bounds.clientMessageId.max) {
      throw badInput("input.clientMessageId", `must be 1–${Bounds.clientMessageId.max} characters`);
    }
  }
  return { content: input.content, clientMessageId };
}

/**
 * One chat turn. Stateless: everything is read from and written to the
 * database. The user message commits first, on its own; each tool call
 * commits together with its result; no transaction spans a model call.
 */
export async function sendMessage(db: Db, deps: AssistantDeps, userId: string, input: SendMessageInput): Promise<TurnResult> {
  const { content, clientMessageId } = validate(input);
  await chargeSend(db, deps, userId);
  const deadline = performance.now() + deps.turnTimeoutMs;
  // The lease outlives the turn's own deadline, so only a dead instance's lease ever expires.
  const leaseOptions: AcquireOptions = { ttlMs: deps.turnTimeoutMs + 30_000, deadline };

  if (clientMessageId !== null) {
    const existing = await findByClientMessageId(db, userId, clientMessageId);
    if (existing) return retryTurn(db, deps, userId, input, existing, content, leaseOptions);
  }

  let opened: { lease: Lease; userMessage: Message };
  try {
    opened = await openTurn(db, userId, input.conversationId, content, clientMessageId, leaseOptions);
  } catch (error) {
    // The same clientMessageId raced in from another request: that one owns the turn.
    if (clientMessageId !== null && isUniqueViolation(error)) {
      const existing = await findByClientMessageId(db, userId, clientMessageId);
      if (existing) return retryTurn(db, deps, userId, input, existing, content, leaseOptions);
    }
    throw error;
  }
  try {
    return await runTurn(db, deps, userId, opened.userMessage, deadline);
  } finally {
    await opened.lease.release();
  }
}

/** The rate-limit bucket of sendMessage, in rate_limit_buckets.name. */
const SEND_MESSAGE_BUCKET = "send_message";

/**
 * Takes a token before anything is read or stored, so a refused send leaves no
 * trace. A retry with a known clientMessageId is charged too: it may run the
 * model again, and charging every call keeps the bound simple.
 */
async function chargeSend(db: Db, deps: AssistantDeps, userId: string): Promise<void> {
  const limit = deps.rateLimit;
  if (limit === undefined || limit.perMinute <= 0) return;
  const outcome = await takeToken(db, userId, SEND_MESSAGE_BUCKET, limit);
  if (outcome.allowed) return;
  deps.logger.info({ retryAfterSeconds: outcome.retryAfterSeconds }, "sendMessage rate limited");
  throw rateLimited("Too many messages", outcome.retryAfterSeconds);
}

function findByClientMessageId(db: Db, userId: string, clientMessageId: string) {
  return db.message.findUnique({ where: { userId_clientMessageId: { userId, clientMessageId } } });
}

async function openTurn(
  db: Db,
  userId: string,
  conversationId: string | undefined,
  content: string,
  clientMessageId: string | null,
  leaseOptions: AcquireOptions,
): Promise<{ lease: Lease; userMessage: Message }> {
  if (conversationId === undefined) {
    const { leaseId, userMessage } = await db.$transaction(async (tx) => {
      const conversation = await tx.conversation.create({ data: { userId, title: titleFrom(content) } });
      const leaseId = await leaseNewConversation(tx, conversation.id, leaseOptions.ttlMs);
      const [message] = await appendMessages(tx, userId, conversation.id, [{ role: "user", content, clientMessageId }]);
      return { leaseId, userMessage: message as Message };
    });
    return { lease: leaseHandle(db, userMessage.conversationId, leaseId), userMessage };
  }
  const lease = await acquireLease(db, userId, conversationId, leaseOptions);
  try {
    const [userMessage] = await db.$transaction((tx) =>
      appendMessages(tx, userId, conversationId, [{ role: "user", content, clientMessageId }]),
    );
    return { lease, userMessage: userMessage as Message };
  } catch (error) {
    await lease.release();
    throw error;
  }
}

/** A repeated clientMessageId: the original payload if that turn finished, else the assistant part again. */
async function retryTurn(
  db: Db,
  deps: AssistantDeps,
  userId: string,
  input: SendMessageInput,
  original: Message,
  content: string,
  leaseOptions: AcquireOptions,
): Promise<TurnResult> {
  if (input.conversationId !== undefined && input.conversationId !== original.conversationId) {
    throw badInput("input.clientMessageId", "was already used for a message in another conversation");
  }
  if (original.content !== content) {
    throw badInput("input.clientMessageId", "was already used for a different message");
  }
  const lease = await acquireLease(db, userId, original.conversationId, leaseOptions);
  try {
    const turn = await loadTurn(db, original);
    const last = turn.at(-1);
    if (last && last.seq > original.seq && isFinalReply(last)) return result(db, original, turn);
    // A later message has been sent since: its turn already showed this one to the model, and an
    // answer made now would land after it, outside this turn (and again on every retry). Return
    // the turn as it stands.
    const later = await db.message.count({
      where: { conversationId: original.conversationId, role: "user", seq: { gt: original.seq } },
    });
    if (later > 0) return result(db, original, turn);
    return await runTurn(db, deps, userId, original, leaseOptions.deadline);
  } finally {
    await lease.release();
  }
}

function isFinalReply(message: Message): boolean {
  return message.role === "assistant" && storedToolCalls(message).length === 0;
}

/** The turn that `userMessage` opened: it and everything after it up to the next user message. */
async function loadTurn(db: Db, userMessage: Message): Promise<Message[]> {
  const next = await db.message.findFirst({
    where: { conversationId: userMessage.conversationId, role: "user", seq: { gt: userMessage.seq } },
    orderBy: { seq: "asc" },
    select: { seq: true },
  });
  return db.message.findMany({
    where: {
      conversationId: userMessage.conversationId,
      seq: { gte: userMessage.seq, ...(next ? { lt: next.seq } : {}) },
    },
    orderBy: { seq: "asc" },
  });
}

async function result(db: Db, userMessage: Message, turn: Message[]): Promise<TurnResult> {
  const conversation = await db.conversation.findUniqueOrThrow({ where: { id: userMessage.conversationId } });
  const last = turn.at(-1);
  const reply = last && last.seq > userMessage.seq && isFinalReply(last) ? last : null;
  return { conversation, userMessage, messages: turn, reply, stopCode: reply?.stopCode ?? null };
}

function unavailable(message: string, retryable: boolean, userMessage: Message, extra: Record<string, unknown> = {}): AppError {
  return new AppError(ErrorCode.ASSISTANT_UNAVAILABLE, message, {
    extensions: {
      retryable,
      // So a client can retry in the right conversation, even one this turn created.
      conversationId: toGlobalId("Conversation", userMessage.conversationId),
      userMessageId: toGlobalId("Message", userMessage.id),
      ...extra,
    },
  });
}

async function runTurn(db: Db, deps: AssistantDeps, userId: string, userMessage: Message, deadline: number): Promise<TurnResult> {
  const model = deps.model;
  if (!model) throw unavailable("COHERE_API_KEY is not set", false, userMessage);
  const conversationId = userMessage.conversationId;

  for (;;) {
    const history = await db.message.findMany({ where: { conversationId }, orderBy: { seq: "asc" } });
    const turn = history.filter((message) => message.seq >= userMessage.seq);

    const pending = unansweredCalls(turn);
    if (pending.length > 0) {
      const repeated = await executeCalls(db, userId, conversationId, turn, pending);
      if (repeated) return endAtBound(db, userId, userMessage, ErrorCode.ASSISTANT_REPEATED_TOOL_CALL, repeated);
      continue;
    }

    const steps = turn.filter((message) => message.role === "assistant" && storedToolCalls(message).length > 0).length;
    if (steps >= deps.maxSteps) {
      return endAtBound(db, userId, userMessage, ErrorCode.ASSISTANT_STEP_LIMIT, String(deps.maxSteps));
    }

    let response;
    try {
      response = await chatWithRetries(
        model,
        { model: deps.modelName, messages: buildHistory(history, deps.clock()), tools: COHERE_TOOLS },
        {
          timeoutMs: deps.callTimeoutMs,
          deadline,
          policy: deps.retryPolicy,
          onRetry: (info) => deps.logger.warn({ ...info, conversationId }, "retrying the model call"),
        },
      );
    } catch (error) {
      if (error instanceof ModelTimeoutError) {
        deps.logger.warn({ conversationId, reason: error.message }, "chat turn timed out");
        return endAtBound(db, userId, userMessage, ErrorCode.ASSISTANT_TIMEOUT, "");
      }
      if (error instanceof ModelUnavailableError) {
        deps.logger.error({ conversationId, err: error.cause ?? error }, "the model is unavailable");
        throw unavailable(
          "The assistant is unavailable right now; your message is saved, so retry with the same clientMessageId",
          error.retryable,
          userMessage,
          error.retryAfterMs === undefined ? {} : { retryAfterSeconds: Math.ceil(error.retryAfterMs / 1000) },
        );
      }
      throw error;
    }

    const calls = normaliseCalls(response.message.toolCalls ?? [], history);
    const text = textOf(response.message.content);
    if (calls.length > 0) {
      await db.$transaction((tx) =>
        appendMessages(tx, userId, conversationId, [
          {
            role: "assistant",
            content: text,
            toolPlan: storable(response.message.toolPlan ?? thinkingOf(response.message.content) ?? "") || undefined,
            toolCalls: calls as never,
          },
        ]),
      );
      continue;
    }
    if (response.finishReason === "ERROR") {
      throw unavailable("The assistant failed to answer; your message is saved, so retry with the same clientMessageId", true, userMessage);
    }
    await db.$transaction((tx) => appendMessages(tx, userId, conversationId, [{ role: "assistant", content: text }]));
    return result(db, userMessage, await loadTurn(db, userMessage));
  }
}

async function endAtBound(db: Db, userId: string, userMessage: Message, code: string, detail: string): Promise<TurnResult> {
  const content = BOUND_MESSAGES[code]?.(detail) ?? "I stopped before finishing.";
  await db.$transaction((tx) =>
    appendMessages(tx, userId, userMessage.conversationId, [{ role: "assistant", content, stopCode: code }]),
  );
  return result(db, userMessage, await loadTurn(db, userMessage));
}

/**
 * Tool call ids key their results, so each must be unique in the conversation:
 * a missing id, or one an earlier step already used, would match that step's
 * result and never run. Such calls get a fresh id; the history we send carries it.
 */
function normaliseCalls(calls: Cohere.ToolCallV2[], history: readonly Message[]): StoredToolCall[] {
  const used = new Set(history.flatMap((message) => storedToolCalls(message).map((call) => call.id)));
  return calls.map((call, index) => {
    const id = call.id && !used.has(call.id) ? call.id : `call_${randomUUID()}_${index}`;
    used.add(id);
    return {
      id,
      type: "function",
      function: { name: storable(call.function?.name ?? ""), arguments: storable(call.function?.arguments ?? "") },
    };
  });
}

/** Postgres text and jsonb cannot hold U+0000; a model could still emit it. */
function storable(text: string): string {
  return text.replaceAll("\u0000", "");
}

function textOf(content: Cohere.AssistantMessageResponseContentItem[] | undefined): string {
  return storable(
    (content ?? [])
      .map((item) => (item.type === "text" ? item.text : ""))
      .join("")
      .trim(),
  );
}

/** Reasoning models put their plan in a "thinking" item instead of tool_plan. */
function thinkingOf(content: Cohere.AssistantMessageResponseContentItem[] | undefined): string | undefined {
  const thinking = (content ?? [])
    .map((item) => (item.type === "thinking" ? item.thinking : ""))
    .join("")
    .trim();
  return thinking === "" ? undefined : thinking;
}

function unansweredCalls(turn: Message[]): StoredToolCall[] {
  const answered = new Set(turn.filter((m) => m.role === "tool").map((m) => m.toolCallId));
  return turn.flatMap((message) => storedToolCalls(message)).filter((call) => !answered.has(call.id));
}

function canonical(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonical).join(",")}]`;
  if (value !== null && typeof value === "object") {
    const entries = Object.entries(value as Record<string, unknown>).sort(([a], [b]) => a.localeCompare(b));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonical(v)}`).join(",")}}`;
  }
  return JSON.stringify(value) ?? "null";
}

function signature(call: StoredToolCall): string {
  const parsed = parseArguments(call.function.arguments);
  return `${call.function.name}(${parsed.ok ? canonical(parsed.value) : call.function.arguments})`;
}

/**
 * Runs the pending calls, each in its own transaction with its result. A call
 * identical to an earlier one in this turn is not run: for a write, any
 * earlier identical call; for a read, one with no write in between (reading
 * again after a change is legitimate). Returns the first repeat, if any.
 */
async function executeCalls(
  db: Db,
  userId: string,
  conversationId: string,
  turn: Message[],
  pending: StoredToolCall[],
): Promise<string | undefined> {
  const pendingIds = new Set(pending.map((call) => call.id));
  const seen = new Map<string, number>();
  let epoch = 0;
  for (const call of turn.flatMap((message) => storedToolCalls(message))) {
    if (pendingIds.has(call.id)) continue;
    seen.set(signature(call), epoch);
    if (isWriteTool(call.function.name)) epoch += 1;
  }

  let repeated: string | undefined;
  for (const call of pending) {
    const sig = signature(call);
    const write = isWriteTool(call.function.name);
    const previous = seen.get(sig);
    const isRepeat = previous !== undefined && (write || previous === epoch);
    seen.set(sig, epoch);
    if (isRepeat) {
      repeated ??= sig;
      await record(db, userId, conversationId, call, {
        ok: false,
        error: "Not run: this exact call was already made in this turn. Use its earlier result.",
      });
      continue;
    }
    await db.$transaction(async (tx) => {
      const parsed = parseArguments(call.function.arguments);
      const outcome: ToolOutcome = parsed.ok
        ? await runTool({ db: tx, userId }, call.function.name, parsed.value)
        : { ok: false, error: `Invalid arguments for ${call.function.name}: ${parsed.error}` };
      await appendMessages(tx, userId, conversationId, [toolMessage(call, outcome)]);
    });
    if (write) epoch += 1;
  }
  return repeated;
}

function toolMessage(call: StoredToolCall, outcome: ToolOutcome) {
  const document = outcome.ok ? outcome.result : { error: outcome.error };
  return { role: "tool" as const, toolCallId: call.id, content: JSON.stringify(document) };
}

async function record(db: Db, userId: string, conversationId: string, call: StoredToolCall, outcome: ToolOutcome) {
  await db.$transaction((tx) => appendMessages(tx, userId, conversationId, [toolMessage(call, outcome)]));
}
