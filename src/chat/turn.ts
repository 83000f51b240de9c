import { randomUUID } from "node:crypto";
import type { Cohere } from "cohere-ai";
import type { Db } from "../db/client.js";
import {
  endTurn,
  flushAnswer,
  recordStep,
  recordToolCall,
  startAnswer,
  toolCallIdsInUse,
  turnMessages,
  TurnStopCode,
  type TokenUsage,
  type TurnEnding,
  type TurnRef,
} from "../domain/conversation-log.js";
import type { RateLimit } from "../domain/rate-limits.js";
import type { BackoffPolicy } from "../lib/backoff.js";
import { AppError, ErrorCode } from "../lib/errors.js";
import type { Message, Turn } from "../generated/prisma/client.js";
import { toGlobalId } from "../lib/ids.js";
import type { Logger } from "../lib/logger.js";
import { AnswerWriter } from "./answer-writer.js";
import { ModelTimeoutError, ModelUnavailableError, type ChatModel } from "./cohere.js";
import { storedToolCalls, type StoredToolCall } from "./history.js";
import { storable, storableArguments, storableToolName, usableCallId } from "./model-output.js";
import { streamStep, type StepResult, type StreamedCall } from "./model-stream.js";
import { answerCutMarker, DEFAULT_STEP_BOUNDS, type StepBounds } from "./step-bounds.js";
import { inputJsonSchema, isWriteTool, parseArguments, runTool, TOOLS, type ToolOutcome } from "./tools.js";
import { buildWindow } from "./window.js";

export interface AssistantDeps {
  /** Undefined when COHERE_API_KEY is unset: chat answers ASSISTANT_UNAVAILABLE, everything else works. */
  model: ChatModel | undefined;
  modelName: string;
  maxSteps: number;
  callTimeoutMs: number;
  turnTimeoutMs: number;
  clock: () => Date;
  logger: Logger;
  retryPolicy?: BackoffPolicy;
  /** sendMessage calls per user, across all instances (CHAT_RATE_LIMIT, CHAT_RATE_BURST). Undefined: no limit. */
  rateLimit?: RateLimit | undefined;
  /** STREAM_FLUSH_MS: the longest a streamed answer's stored text lags behind the model. Default 100. */
  streamFlushMs?: number | undefined;
  /** COHERE_MAX_INPUT_TOKENS: the estimated size of the window each model call gets. Default 100000. */
  maxInputTokens?: number | undefined;
  /** CHAT_MAX_TOOL_CALLS_PER_STEP: past it, none of the step's calls run and the turn ends. Default 16. */
  maxToolCallsPerStep?: number | undefined;
  /** CHAT_MAX_ANSWER_CHARS: an answer is cut here, with a marker. Default 20000. */
  maxAnswerChars?: number | undefined;
}

export const DEFAULT_STREAM_FLUSH_MS = 100;
export const DEFAULT_MAX_INPUT_TOKENS = 100_000;

/** Why a turn stopped early: it was cancelled, its instance is shutting down, or someone else ended it. */
export type StopReason = "cancelled" | "shutdown" | "interrupted";

/** The reason a turn's stop signal is aborted with. */
export class TurnStop extends Error {
  override name = "TurnStop";
  constructor(readonly reason: StopReason) {
    super(`the turn was stopped (${reason})`);
  }
}

/** How a turn ended, as its instance knows it. */
export interface TurnEnd {
  /** Undefined only when the turn could not even be read (the database failed). */
  turn?: Turn | undefined;
  /** What a client waiting for the turn is told, when it ended in a failure. */
  error?: unknown;
}

/** What one run of the loop works with. */
export interface TurnRun {
  db: Db;
  deps: AssistantDeps;
  turn: TurnRef;
  userMessage: Message;
  /** Aborted with a TurnStop when the turn must stop. */
  signal: AbortSignal;
  /** performance.now() value at which the turn's time is up (counted from when it took the lease). */
  deadline: number;
  /** Reads the turn row and aborts `signal` if the turn was asked to stop: the backstop to the notification. */
  checkStop(): Promise<void>;
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
  [ErrorCode.ASSISTANT_TOO_MANY_TOOL_CALLS]: (detail) =>
    `I stopped before finishing: I tried to make more than ${detail} tool calls at once, so I made none of them. Changes made so far are kept; please ask for fewer changes at a time.`,
};

/** ASSISTANT_UNAVAILABLE for a turn whose user message is stored: the client can retry in the right place. */
export function unavailable(message: string, retryable: boolean, userMessage: Message, extra: Record<string, unknown> = {}): AppError {
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

export const RETRY_LATER = "The assistant is unavailable right now; your message is saved, so retry with the same clientMessageId";

/** An answer cut short: its row (if its text reached a write) and everything that arrived. */
interface CutAnswer {
  id: string | undefined;
  content: string;
}

/**
 * The step loop of one turn, over the conversation log, the model stream and
 * the tool registry: each step reads the turn and a window of history from
 * the log, runs any tool calls not yet answered, or streams the next model
 * call into the log. It ends the turn (in the log) and says how.
 */
export async function runTurn(run: TurnRun): Promise<TurnEnd> {
  const { db, deps, userMessage } = run;
  const model = deps.model;
  if (!model) return fail(run, unavailable("COHERE_API_KEY is not set", false, userMessage));

  for (;;) {
    await run.checkStop();
    if (run.signal.aborted) return stopped(run, undefined);
    const messages = await turnMessages(db, userMessage);

    const pending = unansweredCalls(messages);
    if (pending.length > 0) {
      const outcome = await executeCalls(run, messages, pending);
      if (outcome.stopped) return stopped(run, undefined);
      if (outcome.repeated) return endAtBound(run, ErrorCode.ASSISTANT_REPEATED_TOOL_CALL, outcome.repeated);
      continue;
    }

    const steps = messages.filter((message) => message.role === "assistant" && storedToolCalls(message).length > 0).length;
    if (steps >= deps.maxSteps) return endAtBound(run, ErrorCode.ASSISTANT_STEP_LIMIT, String(deps.maxSteps));

    const end = await modelStep(run, model, messages);
    if (end) return end;
  }
}

/** The bounds of each model call, as configured (CHAT_MAX_TOOL_CALLS_PER_STEP, CHAT_MAX_ANSWER_CHARS). */
function stepBounds(deps: AssistantDeps): StepBounds {
  return {
    maxToolCalls: deps.maxToolCallsPerStep ?? DEFAULT_STEP_BOUNDS.maxToolCalls,
    maxAnswerChars: deps.maxAnswerChars ?? DEFAULT_STEP_BOUNDS.maxAnswerChars,
  };
}

function answerWriter(run: TurnRun): AnswerWriter {
  const { db, deps, turn } = run;
  return new AnswerWriter(
    {
      start: (content) => startAnswer(db, turn, content),
      flush: (id, content) => flushAnswer(db, turn.id, id, content),
    },
    {
      flushMs: deps.streamFlushMs ?? DEFAULT_STREAM_FLUSH_MS,
      onStopped: () => void run.checkStop(),
      onError: (error) => deps.logger.warn({ err: error, turnId: turn.id }, "writing a streamed answer failed; the next write retries"),
    },
  );
}

/**
 * One model call, streamed into the log, and what follows from it: the turn's
 * end, or undefined when a step with tool calls was stored and the loop goes on.
 */
async function modelStep(run: TurnRun, model: ChatModel, messages: Message[]): Promise<TurnEnd | undefined> {
  const { db, deps, turn } = run;
  const window = await buildWindow(db, messages, {
    maxInputTokens: deps.maxInputTokens ?? DEFAULT_MAX_INPUT_TOKENS,
    now: deps.clock(),
    tools: COHERE_TOOLS,
  });
  const writer = answerWriter(run);
  let step: StepResult;
  try {
    step = await streamStep(model, { model: deps.modelName, messages: window.messages, tools: COHERE_TOOLS }, {
      timeoutMs: deps.callTimeoutMs,
      deadline: run.deadline,
      signal: run.signal,
      policy: deps.retryPolicy,
      onRetry: (info) => deps.logger.warn({ ...info, conversationId: turn.conversationId }, "retrying the model call"),
      onText: (delta) => writer.append(delta),
      bounds: stepBounds(deps),
    });
  } catch (error) {
    await writer.close();
    return endOnModelError(run, error, { id: writer.messageId, content: writer.content });
  }
  await writer.close();
  return afterStep(run, step, { id: writer.messageId, content: writer.content });
}

/** A model call that threw: a stop, a timeout or an unavailable model each end the turn their way; anything else is a bug. */
function endOnModelError(run: TurnRun, error: unknown, partial: CutAnswer): Promise<TurnEnd> {
  const { deps, turn, userMessage } = run;
  if (error instanceof TurnStop) return stopped(run, partial);
  if (error instanceof ModelTimeoutError) {
    deps.logger.warn({ conversationId: turn.conversationId, reason: error.message }, "chat turn timed out");
    return endAtBound(run, ErrorCode.ASSISTANT_TIMEOUT, "", partial);
  }
  if (error instanceof ModelUnavailableError) {
    deps.logger.error({ conversationId: turn.conversationId, err: error.cause ?? error }, "the model is unavailable");
    const extra = error.retryAfterMs === undefined ? {} : { retryAfterSeconds: Math.ceil(error.retryAfterMs / 1000) };
    return fail(run, unavailable(RETRY_LATER, error.retryable, userMessage, extra), partial);
  }
  throw error;
}

const UNUSABLE_ANSWER = "The assistant's answer could not be used; your message is saved, so retry with the same clientMessageId";

/** What a finished model call leads to: the turn's end, or undefined after storing a step whose calls run next. */
async function afterStep(run: TurnRun, step: StepResult, answer: CutAnswer): Promise<TurnEnd | undefined> {
  const { deps, turn, userMessage } = run;
  if (step.overflow === "tool-calls") {
    deps.logger.warn({ conversationId: turn.conversationId, bound: stepBounds(deps).maxToolCalls }, "a model step asked for too many tool calls");
    return endAtBound(run, ErrorCode.ASSISTANT_TOO_MANY_TOOL_CALLS, String(stepBounds(deps).maxToolCalls), answer);
  }
  if (step.overflow === "arguments") {
    deps.logger.warn({ conversationId: turn.conversationId }, "a model step sent tool arguments too long to use");
    return fail(run, unavailable(UNUSABLE_ANSWER, true, userMessage), answer, step.usage);
  }
  if (step.overflow === "answer") return cutAnswer(run, answer, stepBounds(deps).maxAnswerChars);
  if (step.toolCalls.length > 0) {
    const recorded = await recordStep(run.db, turn, {
      streamedId: answer.id,
      content: storable(answer.content),
      toolPlan: storable(step.toolPlan || step.thinking).trim() || undefined,
      toolCalls: (await normaliseCalls(run, step.toolCalls)) as never,
    }, step.usage);
    if (recorded) return undefined;
    await run.checkStop();
    return stopped(run, answer);
  }
  if (step.finishReason === "ERROR") {
    const error = unavailable("The assistant failed to answer; your message is saved, so retry with the same clientMessageId", true, userMessage);
    return fail(run, error, answer, step.usage);
  }
  return complete(run, answer, step.usage);
}

/** Ends the turn in the log; when someone else ended it first (a cancel, or its lease taken as dead), follows them. */
async function end(run: TurnRun, ending: TurnEnding, error?: AppError): Promise<TurnEnd> {
  const outcome = await endTurn(run.db, run.turn, ending);
  if (outcome.kind === "ended") return { turn: outcome.turn, error };
  if (outcome.kind === "cancel-requested") {
    return end(run, {
      status: "CANCELLED",
      stopCode: TurnStopCode.CANCELLED,
      usage: ending.usage,
      answer: ending.answer && { ...ending.answer, status: "CANCELLED", stopCode: undefined },
    });
  }
  const { turn } = outcome;
  return { turn, error: turn.status === "FAILED" ? unavailable(RETRY_LATER, true, run.userMessage) : undefined };
}

function complete(run: TurnRun, answer: CutAnswer, usage: TokenUsage | undefined): Promise<TurnEnd> {
  return end(run, {
    status: "COMPLETED",
    stopCode: null,
    usage,
    answer: { ...answer, content: storable(answer.content), status: "COMPLETE" },
    yieldToCancel: true,
  });
}

/**
 * The answer reached CHAT_MAX_ANSWER_CHARS: what fitted is the reply, with a
 * marker saying it was cut, and the turn's stop code (on the reply too) says so.
 * The model's call was closed at the bound; its usage was never reported.
 */
function cutAnswer(run: TurnRun, answer: CutAnswer, maxChars: number): Promise<TurnEnd> {
  run.deps.logger.warn({ conversationId: run.turn.conversationId, bound: maxChars }, "the model's answer was cut at the bound");
  const code = ErrorCode.ASSISTANT_ANSWER_TOO_LONG;
  return end(run, {
    status: "COMPLETED",
    stopCode: code,
    answer: { ...answer, content: storable(answer.content) + answerCutMarker(maxChars), status: "COMPLETE", stopCode: code },
    yieldToCancel: true,
  });
}

function fail(run: TurnRun, error: AppError, answer?: CutAnswer, usage?: TokenUsage): Promise<TurnEnd> {
  return end(run, { status: "FAILED", stopCode: error.code, usage, answer: answer && { ...answer, status: "FAILED" } }, error);
}

/** The turn's signal was aborted: end it as its reason says, keeping what arrived. */
function stopped(run: TurnRun, answer: CutAnswer | undefined): Promise<TurnEnd> {
  const reason = run.signal.reason instanceof TurnStop ? run.signal.reason.reason : "interrupted";
  if (reason === "cancelled") {
    return end(run, { status: "CANCELLED", stopCode: TurnStopCode.CANCELLED, answer: answer && { ...answer, status: "CANCELLED" } });
  }
  if (reason === "shutdown") {
    const error = unavailable("The assistant was interrupted; your message is saved, so retry with the same clientMessageId", true, run.userMessage);
    return end(run, { status: "FAILED", stopCode: TurnStopCode.INTERRUPTED, answer: answer && { ...answer, status: "FAILED" } }, error);
  }
  // Someone else ended it: nothing of ours may be written.
  return end(run, { status: "FAILED", stopCode: TurnStopCode.INTERRUPTED });
}

/** A bound ended the turn: a stored message says so, and its code goes beside the payload. */
function endAtBound(run: TurnRun, code: string, detail: string, answer?: CutAnswer): Promise<TurnEnd> {
  const content = BOUND_MESSAGES[code]?.(detail) ?? "I stopped before finishing.";
  return end(run, {
    status: "COMPLETED",
    stopCode: code,
    answer: answer && { ...answer, status: "FAILED" },
    append: [{ role: "assistant", content, stopCode: code }],
  });
}

/**
 * Tool call ids key their results, so each must be unique in the conversation:
 * a missing id, or one an earlier step already used, would match that step's
 * result and never run. Such calls get a fresh id, as do ids that cannot be
 * kept as they are (see usableCallId); the history we send carries it.
 */
async function normaliseCalls(run: TurnRun, calls: readonly StreamedCall[]): Promise<StoredToolCall[]> {
  const given = calls.map((call) => usableCallId(call.id)).filter((id): id is string => id !== undefined);
  const used = await toolCallIdsInUse(run.db, run.turn.conversationId, given);
  return calls.map((call, index) => {
    const usable = usableCallId(call.id);
    const id = usable && !used.has(usable) ? usable : `call_${randomUUID()}_${index}`;
    used.add(id);
    return {
      id,
      type: "function",
      function: { name: storableToolName(call.name), arguments: storableArguments(call.arguments) },
    };
  });
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
 * Runs the pending calls, each in its own transaction with its result (and
 * none once the turn is asked to stop). A call identical to an earlier one in
 * this turn is not run: for a write, any earlier identical call; for a read,
 * one with no write in between (reading again after a change is legitimate).
 * Reports the first repeat, if any.
 */
async function executeCalls(
  run: TurnRun,
  turn: Message[],
  pending: StoredToolCall[],
): Promise<{ stopped: boolean; repeated?: string | undefined }> {
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
    if (run.signal.aborted) return { stopped: true };
    const sig = signature(call);
    const write = isWriteTool(call.function.name);
    const previous = seen.get(sig);
    const isRepeat = previous !== undefined && (write || previous === epoch);
    seen.set(sig, epoch);
    if (isRepeat) repeated ??= sig;
    const ran = await recordToolCall(run.db, run.turn, async (tx) => {
      if (isRepeat) return toolMessage(call, { ok: false, error: "Not run: this exact call was already made in this turn. Use its earlier result." });
      const parsed = parseArguments(call.function.arguments);
      const outcome: ToolOutcome = parsed.ok
        ? await runTool({ db: tx, userId: run.turn.userId }, call.function.name, parsed.value)
        : { ok: false, error: `Invalid arguments for ${call.function.name}: ${parsed.error}` };
      return toolMessage(call, outcome);
    });
    if (!ran) {
      await run.checkStop();
      return { stopped: true };
    }
    if (write && !isRepeat) epoch += 1;
  }
  return { stopped: false, repeated };
}

function toolMessage(call: StoredToolCall, outcome: ToolOutcome) {
  const document = outcome.ok ? outcome.result : { error: outcome.error };
  return { role: "tool" as const, toolCallId: call.id, content: JSON.stringify(document) };
}
