import type { Cohere } from "cohere-ai";
import { flushAnswer, startAnswer } from "../domain/conversation-log.js";
import type { Message } from "../generated/prisma/client.js";
import { AnswerWriter } from "./answer-writer.js";
import type { ChatModel } from "./cohere.js";
import { streamStep, type StepResult } from "./model-stream.js";
import { DEFAULT_STEP_BOUNDS, type StepBounds } from "./step-bounds.js";
import { inputJsonSchema, TOOLS } from "./tools.js";
import { DEFAULT_MAX_INPUT_TOKENS, DEFAULT_STREAM_FLUSH_MS, NO_CHAT_TELEMETRY, type AssistantDeps, type TurnRun } from "./turn-run.js";
import { buildWindow } from "./window.js";

/** The tools as the model is sent them (they count against the window's budget). */
export const COHERE_TOOLS: Cohere.ToolV2[] = TOOLS.map((tool) => ({
  type: "function",
  function: { name: tool.name, description: tool.description, parameters: inputJsonSchema(tool) },
}));

/** A streamed answer: its row (if its text reached a write) and everything that arrived, written or not. */
export interface StreamedAnswer {
  id: string | undefined;
  content: string;
}

/** One model call: the step it returned, or what it threw; either way the answer text that arrived. */
export type ModelCall = { ok: true; step: StepResult; answer: StreamedAnswer } | { ok: false; error: unknown; answer: StreamedAnswer };

/** The bounds of each model call, as configured (CHAT_MAX_TOOL_CALLS_PER_STEP, CHAT_MAX_ANSWER_CHARS). */
export function stepBounds(deps: AssistantDeps): StepBounds {
  return {
    maxToolCalls: deps.maxToolCallsPerStep ?? DEFAULT_STEP_BOUNDS.maxToolCalls,
    maxAnswerChars: deps.maxAnswerChars ?? DEFAULT_STEP_BOUNDS.maxAnswerChars,
  };
}

function answerWriter(run: TurnRun): AnswerWriter {
  const { db, deps, turn } = run;
  return new AnswerWriter(
    {
      start: async (content) => {
        const row = await startAnswer(db, turn, content);
        if (row) run.log.checked();
        return row;
      },
      flush: async (id, content) => {
        const ok = await flushAnswer(db, turn.id, id, content);
        if (ok) run.log.checked();
        return ok;
      },
    },
    {
      flushMs: deps.streamFlushMs ?? DEFAULT_STREAM_FLUSH_MS,
      onStopped: () => void run.checkStop(),
      onError: (error) => deps.logger.warn({ err: error, turnId: turn.id }, "writing a streamed answer failed; the next write retries"),
    },
  );
}

/**
 * One model call over the window of the turn's history, its answer streamed
 * into the log as it arrives. A failure of the call is returned, not thrown,
 * with the answer so far: the loop decides how the turn ends.
 */
export async function callModel(run: TurnRun, model: ChatModel, messages: Message[]): Promise<ModelCall> {
  const { db, deps, turn } = run;
  const window = await buildWindow(db, messages, {
    maxInputTokens: deps.maxInputTokens ?? DEFAULT_MAX_INPUT_TOKENS,
    time: { now: deps.clock(), timezone: await run.zone() },
    tools: COHERE_TOOLS,
    history: run.log.earlier(),
  });
  const writer = answerWriter(run);
  const telemetry = deps.telemetry ?? NO_CHAT_TELEMETRY;
  let step: StepResult;
  try {
    step = await telemetry.modelCall(turn, () =>
      streamStep(
        model,
        { model: deps.modelName, messages: window.messages, tools: COHERE_TOOLS },
        {
          timeoutMs: deps.callTimeoutMs,
          deadline: run.deadline,
          signal: run.signal,
          policy: deps.retryPolicy,
          onRetry: (info) => deps.logger.warn({ ...info, conversationId: turn.conversationId }, "retrying the model call"),
          onText: (delta) => writer.append(delta),
          bounds: stepBounds(deps),
        },
      ),
    );
  } catch (error) {
    await writer.close();
    return { ok: false, error, answer: { id: writer.messageId, content: writer.content } };
  }
  // The answer's last write lands before the step is stored or the turn ends.
  await writer.close();
  return { ok: true, step, answer: { id: writer.messageId, content: writer.content } };
}
