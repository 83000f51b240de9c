import { randomUUID } from "node:crypto";
import type { Cohere } from "cohere-ai";
import type { Db, DbClient } from "../db/client.js";
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
import { withSavepoint } from "../domain/undo.js";
import { AppError, ErrorCode } from "../lib/errors.js";
import type { Message, Turn } from "../generated/prisma/client.js";
import { toGlobalId } from "../lib/ids.js";
import type { Logger } from "../lib/logger.js";
import { AnswerWriter } from "./answer-writer.js";
import { ModelTimeoutError, ModelUnavailableError, type ChatModel, type RetryPolicy } from "./cohere.js";
import { storedToolCalls, type StoredToolCall } from "./history.js";
import { storable, streamStep, type StepResult, type StreamedCall } from "./model-stream.js";
import { inputJsonSchema, isWriteTool, parseArguments, runTool, TOOLS, type ToolContext, type ToolOutcome } from "./tools.js";
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
  retryPolicy?: RetryPolicy;
  /** sendMessage calls per user, across all instances (CHAT_RATE_LIMIT, CHAT_RATE_BURST). Undefined: no limit. */
  rateLimit?: RateLimit | undefined;
  /** STREAM_FLUSH_MS: the longest a streamed answer's stored text lags behind the model. Default 100. */
  streamFlushMs?: number | undefined;
  /** COHERE_MAX_INPUT_TOKENS: the estimated size of the window each model call gets. Default 100000. */
  maxInputTokens?: number | undefined;
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
  const { db, deps, turn, userMessage } = run;
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

    const window = await buildWindow(db, messages, {
      maxInputTokens: deps.maxInputTokens ?? DEFAULT_MAX_INPUT_TOKENS,
      now: deps.clock(),
      tools: COHERE_TOOLS,
    });
    const writer = new AnswerWriter(
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

    let step: StepResult;
    try {
      step = await streamStep(model, { model: deps.modelName, messages: window.messages, tools: COHERE_TOOLS }, {
        timeoutMs: deps.callTimeoutMs,
        deadline: run.deadline,
        signal: run.signal,
        policy: deps.retryPolicy,
        onRetry: (info) => deps.logger.warn({ ...info, conversationId: turn.conversationId }, "retrying the model call"),
        onText: (delta) => writer.append(delta),
      });
    } catch (error) {
      await writer.close();
      const partial = { id: writer.messageId, content: writer.content };
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
    await writer.close();

    if (step.toolCalls.length > 0) {
      const calls = await normaliseCalls(run, step.toolCalls);
      const toolPlan = storable(step.toolPlan || step.thinking).trim();
      const recorded = await recordStep(
        db,
        turn,
        { streamedId: writer.messageId, content: writer.content, toolPlan: toolPlan || undefined, toolCalls: calls as never },
        step.usage,
      );
      if (!recorded) {
        await run.checkStop();
        return stopped(run, { id: writer.messageId, content: writer.content });
      }
      continue;
    }
    if (step.finishReason === "ERROR") {
      return fail(
        run,
        unavailable("The assistant failed to answer; your message is saved, so retry with the same clientMessageId", true, userMessage),
        { id: writer.messageId, content: writer.content },
        step.usage,
      );
    }
    return complete(run, { id: writer.messageId, content: writer.content }, step.usage);
  }
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
      answer: ending.answer && { ...ending.answer, status: "CANCELLED" },
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
    answer: { ...answer, status: "COMPLETE" },
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
 * result and never run. Such calls get a fresh id; the history we send carries it.
 */
async function normaliseCalls(run: TurnRun, calls: readonly StreamedCall[]): Promise<StoredToolCall[]> {
  const given = calls.map((call) => call.id).filter((id): id is string => id !== undefined);
  const used = await toolCallIdsInUse(run.db, run.turn.conversationId, given);
  return calls.map((call, index) => {
    const id = call.id && !used.has(call.id) ? call.id : `call_${randomUUID()}_${index}`;
    used.add(id);
    return {
      id,
      type: "function",
      function: { name: storable(call.name), arguments: storable(call.arguments) },
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
        ? await runTool(toolContext(run.turn, tx, call), call.function.name, parsed.value)
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

/** A tool call of this turn: its writes are the assistant's, in this turn, by this call. */
function toolContext(turn: TurnRef, tx: DbClient, call: StoredToolCall): ToolContext {
  return {
    db: tx,
    userId: turn.userId,
    cause: { actor: "ASSISTANT", turnId: turn.id, toolCallId: call.id },
    turn: { id: turn.id, conversationId: turn.conversationId },
    atomically: (work) => withSavepoint(tx, work),
  };
}

function toolMessage(call: StoredToolCall, outcome: ToolOutcome) {
  const document = outcome.ok ? outcome.result : { error: outcome.error };
  return { role: "tool" as const, toolCallId: call.id, content: JSON.stringify(document) };
}
