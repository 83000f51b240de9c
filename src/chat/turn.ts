import { randomUUID } from "node:crypto";
import { recordStep, toolCallIdsInUse } from "../domain/conversation-log.js";
import type { Message } from "../generated/prisma/client.js";
import { ErrorCode } from "../lib/errors.js";
import { ModelTimeoutError, ModelUnavailableError, type ChatModel } from "./cohere.js";
import type { StoredToolCall } from "./history.js";
import { callModel, stepBounds, type StreamedAnswer } from "./model-call.js";
import { storable, storableArguments, storableToolName, usableCallId } from "./model-output.js";
import type { StepResult, StreamedCall } from "./model-stream.js";
import { firstStop, stopRules } from "./stop-conditions.js";
import { executeToolCalls } from "./tool-execution.js";
import { complete, cutAnswer, endAtBound, fail, pause, RETRY_LATER, stopped, unavailable } from "./turn-end.js";
import { TurnStoppedError, type TurnEnd, type TurnRun } from "./turn-run.js";
import { turnSteps, unansweredCalls } from "./turn-steps.js";

/**
 * The step loop of one turn, over the conversation log: each pass looks at the
 * turn's messages, runs any tool calls not yet answered (pausing the turn when
 * some wait for the user's approval), checks the stop conditions, or calls the
 * model and stores its step. The log is the state, so a turn resumed on
 * another instance, after a pause or an interruption, picks up where this one
 * left off. It reads the log once (run.log keeps what its writes return, as it
 * holds the lease), and checks whether it may go on in each write: a write
 * that finds it cancelled or ended stores nothing and stops the loop. It ends
 * or pauses the turn (in the log) and says how.
 */
export async function runTurn(run: TurnRun): Promise<TurnEnd> {
  const model = run.deps.model;
  if (!model) return fail(run, unavailable("COHERE_API_KEY is not set", false, run.userMessage));
  const stopWhen = stopRules(run.deps.maxSteps);

  for (;;) {
    if (run.signal.aborted) return stopped(run, undefined);
    const messages = await run.log.messages();
    const steps = turnSteps(messages);

    const unanswered = unansweredCalls(steps);
    if (unanswered.length > 0) {
      const executed = await executeToolCalls(run, unanswered);
      if (executed === "stopped") return stopped(run, undefined);
      if (executed !== "done") return pause(run, executed.held);
      continue;
    }

    const stop = firstStop(stopWhen, steps);
    if (stop) return endAtBound(run, stop.code, stop.detail);

    const end = await modelStep(run, model, messages);
    if (end) return end;
  }
}

/** One model call and what follows from it: the turn's end, or undefined when a step with tool calls was stored. */
async function modelStep(run: TurnRun, model: ChatModel, messages: Message[]): Promise<TurnEnd | undefined> {
  const called = await callModel(run, model, messages);
  if (!called.ok) return endOnModelError(run, called.error, called.answer);
  return afterStep(run, called.step, called.answer);
}

/** A model call that threw: a stop, a timeout or an unavailable model each end the turn their way; anything else is a bug. */
function endOnModelError(run: TurnRun, error: unknown, partial: StreamedAnswer): Promise<TurnEnd> {
  const { deps, turn, userMessage } = run;
  if (error instanceof TurnStoppedError) return stopped(run, partial);
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
async function afterStep(run: TurnRun, step: StepResult, answer: StreamedAnswer): Promise<TurnEnd | undefined> {
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
  if (step.toolCalls.length > 0) return recordToolStep(run, step, answer);
  if (step.finishReason === "ERROR") {
    const error = unavailable("The assistant failed to answer; your message is saved, so retry with the same clientMessageId", true, userMessage);
    return fail(run, error, answer, step.usage);
  }
  return complete(run, answer, step.usage);
}

/** Stores a step that asked for tools (its calls run on the next pass); ends the turn if it may no longer write. */
async function recordToolStep(run: TurnRun, step: StepResult, answer: StreamedAnswer): Promise<TurnEnd | undefined> {
  let used = new Set<string>();
  // The ids are checked against the conversation in the write itself; only when one is in use are they read, and renamed.
  for (let pass = 0; pass < 2; pass += 1) {
    const calls = normaliseCalls(step.toolCalls, used);
    const recorded = await recordStep(
      run.db,
      run.turn,
      {
        streamedId: answer.id,
        content: storable(answer.content),
        toolPlan: storable(step.toolPlan || step.thinking).trim() || undefined,
        toolCalls: calls as never,
        callIds: pass === 0 ? calls.map((call) => call.id) : [],
      },
      step.usage,
    );
    if (recorded === "ids-in-use") {
      used = await toolCallIdsInUse(run.db, run.turn.conversationId, callIdsOf(step.toolCalls));
      continue;
    }
    if (recorded === "not-writable") break;
    run.log.add(recorded);
    return undefined;
  }
  await run.checkStop();
  return stopped(run, answer);
}

function callIdsOf(calls: readonly StreamedCall[]): string[] {
  return calls.map((call) => usableCallId(call.id)).filter((id): id is string => id !== undefined);
}

/**
 * Tool call ids key their results, so each must be unique in the conversation:
 * a missing id, or one an earlier step already used (`used`, read only when the
 * write found one in use), would match that step's result and never run. Such
 * calls get a fresh id, as do ids that cannot be kept as they are (see
 * usableCallId), and a repeated id within the step; the history we send carries it.
 */
function normaliseCalls(calls: readonly StreamedCall[], inUse: ReadonlySet<string>): StoredToolCall[] {
  const used = new Set(inUse);
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
