import { endTurn, pauseTurn, TurnStopCode, type EndOutcome, type TokenUsage, type TurnEnding } from "../domain/conversation-log.js";
import type { HeldCall } from "../domain/tool-approvals.js";
import type { Message } from "../generated/prisma/client.js";
import { AppError, ErrorCode } from "../lib/errors.js";
import { toGlobalId } from "../lib/ids.js";
import { DEFAULT_APPROVAL_TTL_MS } from "./approval-policy.js";
import type { StreamedAnswer } from "./model-call.js";
import { storable } from "./model-output.js";
import { answerCutMarker } from "./step-bounds.js";
import { TurnStoppedError, type TurnEnd, type TurnRun } from "./turn-run.js";

/** The ways a turn ends, each stored in the log in one transaction with its answer. */

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

/**
 * Ends the turn in the log (the lease given back in the same statement); when
 * someone else ended it first (a cancel, or its lease taken as dead), follows them.
 */
async function end(run: TurnRun, ending: TurnEnding, error?: AppError): Promise<TurnEnd> {
  const { outcome, leaseReleased } = await endReleasing(run, ending);
  if (outcome.kind === "ended") {
    run.log.add(outcome);
    return { turn: outcome.turn, error, held: run.log.held(), leaseReleased };
  }
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

/**
 * The end, with the lease given back in its statement. Should that statement
 * fail, the end is stored again without the release (the run hands the lease
 * back after it, or it expires by itself): a lease that cannot be given back
 * never fails a turn that could end.
 */
async function endReleasing(run: TurnRun, ending: TurnEnding): Promise<{ outcome: EndOutcome; leaseReleased: boolean }> {
  try {
    return { outcome: await endTurn(run.db, run.turn, ending, true), leaseReleased: true };
  } catch (error) {
    if (error instanceof AppError) throw error;
    run.deps.logger.warn({ err: error, turnId: run.turn.id }, "ending the turn with its lease failed; ending it without");
    return { outcome: await endTurn(run.db, run.turn, ending, false), leaseReleased: false };
  }
}

export function complete(run: TurnRun, answer: StreamedAnswer, usage: TokenUsage | undefined): Promise<TurnEnd> {
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
export function cutAnswer(run: TurnRun, answer: StreamedAnswer, maxChars: number): Promise<TurnEnd> {
  run.deps.logger.warn({ conversationId: run.turn.conversationId, bound: maxChars }, "the model's answer was cut at the bound");
  const code = ErrorCode.ASSISTANT_ANSWER_TOO_LONG;
  return end(run, {
    status: "COMPLETED",
    stopCode: code,
    answer: { ...answer, content: storable(answer.content) + answerCutMarker(maxChars), status: "COMPLETE", stopCode: code },
    yieldToCancel: true,
  });
}

export function fail(run: TurnRun, error: AppError, answer?: StreamedAnswer, usage?: TokenUsage): Promise<TurnEnd> {
  return end(run, { status: "FAILED", stopCode: error.code, usage, answer: answer && { ...answer, status: "FAILED" } }, error);
}

/** The turn's signal was aborted: end it as its reason says, keeping what arrived. */
export function stopped(run: TurnRun, answer: StreamedAnswer | undefined): Promise<TurnEnd> {
  const reason = run.signal.reason instanceof TurnStoppedError ? run.signal.reason.reason : "interrupted";
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
export function endAtBound(run: TurnRun, code: string, detail: string, answer?: StreamedAnswer): Promise<TurnEnd> {
  const content = BOUND_MESSAGES[code]?.(detail) ?? "I stopped before finishing.";
  return end(run, {
    status: "COMPLETED",
    stopCode: code,
    answer: answer && { ...answer, status: "FAILED" },
    append: [{ role: "assistant", content, stopCode: code }],
  });
}

/**
 * Some of the step's calls wait for the user (CHAT_APPROVAL): the turn
 * pauses, REQUIRES_ACTION, holding no lease and no memory; the time it used so
 * far is stored, so that a resumed turn gets only the rest of its bound.
 * Cancelled meanwhile (nothing stored): it ends as its stop says.
 */
export async function pause(run: TurnRun, held: readonly HeldCall[]): Promise<TurnEnd> {
  const { turnTimeoutMs, approvalTtlMs } = run.deps;
  const timeUsedMs = Math.min(turnTimeoutMs, Math.max(0, turnTimeoutMs - (run.deadline - performance.now())));
  const turn = await pauseTurn(run.db, run.turn, { held, ttlMs: approvalTtlMs ?? DEFAULT_APPROVAL_TTL_MS, timeUsedMs });
  if (turn) return { turn };
  await run.checkStop();
  return stopped(run, undefined);
}
