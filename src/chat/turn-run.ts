import type { Db } from "../db/client.js";
import type { TurnIdentity } from "../domain/conversation-log.js";
import type { RateLimit } from "../domain/rate-limits.js";
import type { Conversation, Message, Turn } from "../generated/prisma/client.js";
import type { BackoffPolicy } from "../lib/backoff.js";
import type { Logger } from "../lib/logger.js";
import type { ApprovalPolicy } from "./approval-policy.js";
import type { ChatModel } from "./cohere.js";
import type { TurnLog } from "./turn-log.js";
import type { StepResult } from "./model-stream.js";
import type { ToolOutcome } from "./tools.js";

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
  /** CHAT_APPROVAL: which tool calls wait for the user's approval. Default destructive. */
  approvalPolicy?: ApprovalPolicy | undefined;
  /** CHAT_APPROVAL_TTL: how long a held call waits for a decision before the turn ends APPROVAL_EXPIRED. Default 15 min. */
  approvalTtlMs?: number | undefined;
  /** False: this instance runs no expiry timer, and a past-due turn ends only when a request touches it. Default true. */
  approvalSweep?: boolean | undefined;
  /** Metrics and spans around turns, model calls and tool calls (METRICS_PORT, OTEL_EXPORTER_OTLP_ENDPOINT). Default none. */
  telemetry?: ChatTelemetry | undefined;
}

export const DEFAULT_STREAM_FLUSH_MS = 100;
export const DEFAULT_MAX_INPUT_TOKENS = 100_000;

/** Why a turn was told to stop from outside the loop: it was cancelled, its instance is shutting down, or someone else ended it. */
export type StopReason = "cancelled" | "shutdown" | "interrupted";

/**
 * What a turn's stop signal is aborted with, and so what a model call under
 * that signal throws: the loop tells a stop from a failure by it.
 */
export class TurnStoppedError extends Error {
  override name = "TurnStoppedError";
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
  /** The turn's messages and conversation row as its own end left them: the payload is built from them, not read back. */
  held?: { messages: Message[]; conversation: Conversation } | undefined;
  /** The end gave the conversation's lease back itself. */
  leaseReleased?: boolean | undefined;
}

/** What one run of the loop works with. */
export interface TurnRun {
  db: Db;
  deps: AssistantDeps;
  turn: TurnIdentity;
  userMessage: Message;
  /** The log as the turn holds it: read once, kept as it writes. */
  log: TurnLog;
  /** Aborted with a TurnStoppedError when the turn must stop. */
  signal: AbortSignal;
  /**
   * performance.now() value at which the turn's time is up: counted from when
   * it took the lease, less what it used before a pause (the wait for a human
   * never counts).
   */
  deadline: number;
  /**
   * The user has decided on calls of this turn (it paused before): its
   * approvals are read before its calls run. A turn that never paused has
   * none, and skips that read unless a call needs approval.
   */
  decided: boolean;
  /** Reads the turn row and aborts `signal` if the turn was asked to stop: the backstop to the notification. */
  checkStop(): Promise<void>;
  /** The user's time zone, read once per turn (the system message and the tools' local times). */
  zone(): Promise<string>;
}

/**
 * The turn loop's hooks for metrics and traces, each wrapped around one piece
 * of work at its call site: a whole turn, one model call, one tool call. The
 * chat layer knows nothing of Prometheus or OpenTelemetry; the server passes an
 * implementation (src/telemetry/chat.ts) in AssistantDeps.telemetry, or none.
 */
export interface ChatTelemetry {
  /** A turn run by this instance, from its launch to its end (or pause). */
  turn(turn: TurnIdentity, run: () => Promise<TurnEnd>): Promise<TurnEnd>;
  /** One model call, retries included. */
  modelCall(turn: TurnIdentity, call: () => Promise<StepResult>): Promise<StepResult>;
  /** One tool call through the registry. */
  toolCall(turn: TurnIdentity, call: { id: string; name: string }, run: () => Promise<ToolOutcome>): Promise<ToolOutcome>;
}

export const NO_CHAT_TELEMETRY: ChatTelemetry = {
  turn: (_turn, run) => run(),
  modelCall: (_turn, call) => call(),
  toolCall: (_turn, _call, run) => run(),
};
