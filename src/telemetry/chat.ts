import { ModelTimeoutError, ModelUnavailableError } from "../chat/cohere.js";
import { findTool } from "../chat/tools.js";
import { TurnStoppedError, type ChatTelemetry, type TurnEnd } from "../chat/turn-run.js";
import type { TurnIdentity } from "../domain/conversation-log.js";
import { AppError } from "../lib/errors.js";
import { NO_TRACING, type SpanAttributes, type Tracing } from "../lib/tracing.js";
import type { ChatMetrics } from "./metrics.js";

/**
 * The chat loop's telemetry: each hook counts into the metrics (when
 * METRICS_PORT is set) and runs its work in a span (when tracing is on).
 * A turn's span holds its model calls' and tool calls' spans, and those the
 * database queries they make. Attributes are ids, names, codes and counts.
 */
export function chatTelemetry(metrics: ChatMetrics | undefined, tracing: Tracing = NO_TRACING): ChatTelemetry {
  return {
    turn: (turn, run) =>
      tracing.inSpan("chat.turn", turnAttributes(turn), async (span) => {
        const end = await run();
        const { status, stopCode } = howItEnded(end);
        metrics?.turnEnded(status, stopCode);
        span.setAttributes({ "chat.turn.status": status, "chat.turn.stop_code": stopCode });
        if (status === "FAILED") span.fail(stopCode);
        return end;
      }),
    modelCall: (turn, call) =>
      tracing.inSpan("chat.model_call", turnAttributes(turn), async (span) => {
        const started = performance.now();
        try {
          const step = await call();
          metrics?.modelCall("ok", (performance.now() - started) / 1000, step.usage);
          if (step.usage) {
            span.setAttributes({ "gen_ai.usage.input_tokens": step.usage.inputTokens, "gen_ai.usage.output_tokens": step.usage.outputTokens });
          }
          return step;
        } catch (error) {
          const outcome = modelOutcome(error);
          metrics?.modelCall(outcome, (performance.now() - started) / 1000, undefined);
          span.fail(outcome);
          throw error;
        }
      }),
    toolCall: (turn, call, run) => {
      // The model names the tool: only the registry's names become labels.
      const tool = findTool(call.name)?.name ?? "unknown";
      const attributes = { ...turnAttributes(turn), "chat.tool.name": tool, "chat.tool.call_id": call.id };
      return tracing.inSpan("chat.tool_call", attributes, async (span) => {
        try {
          const outcome = await run();
          metrics?.toolCall(tool, outcome.ok ? "ok" : "error");
          span.setAttributes({ "chat.tool.outcome": outcome.ok ? "ok" : "error" });
          return outcome;
        } catch (error) {
          metrics?.toolCall(tool, "failed");
          throw error;
        }
      });
    },
  };
}

function turnAttributes(turn: TurnIdentity): SpanAttributes {
  return { "chat.turn.id": turn.id, "chat.conversation.id": turn.conversationId };
}

/** The turn's status and stop code as stored; a turn that failed before its end could be read has its error's code. */
function howItEnded(end: TurnEnd): { status: string; stopCode: string } {
  if (end.turn) return { status: end.turn.status, stopCode: end.turn.stopCode ?? "none" };
  return { status: "FAILED", stopCode: end.error instanceof AppError ? end.error.code : "INTERNAL" };
}

function modelOutcome(error: unknown): string {
  if (error instanceof TurnStoppedError) return "stopped";
  if (error instanceof ModelTimeoutError) return "timeout";
  if (error instanceof ModelUnavailableError) return "unavailable";
  return "error";
}
