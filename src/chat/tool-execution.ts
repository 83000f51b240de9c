import { recordToolCall } from "../domain/conversation-log.js";
import type { NewMessage } from "../domain/messages.js";
import type { StoredToolCall } from "./history.js";
import { parseArguments, runTool, type ToolContext, type ToolOutcome } from "./tools.js";
import type { TurnRun } from "./turn-run.js";
import type { StepCall } from "./turn-steps.js";

/** What the model is told of a call that repeats an earlier one (see markRepeats). */
export const NOT_RUN_REPEAT = "Not run: this exact call was already made in this turn. Use its earlier result.";

/** What becomes of a call, decided before any call of the step runs. */
export type PlannedCall =
  | { kind: "run"; call: StoredToolCall }
  /** Answered without running, with this outcome. */
  | { kind: "answer"; call: StoredToolCall; outcome: ToolOutcome };

/**
 * Sorts the calls before any of them runs: the place where a step's calls
 * are told apart, in call order. Approval (issue 24) adds a kind here, calls
 * held as pending until a decision.
 */
export function planCalls(calls: readonly StepCall[]): PlannedCall[] {
  return calls.map(({ call, repeats }) =>
    repeats ? { kind: "answer", call, outcome: { ok: false, error: NOT_RUN_REPEAT } } : { kind: "run", call },
  );
}

/** What tool execution needs of the turn. */
export type ToolRun = Pick<TurnRun, "db" | "turn" | "signal" | "checkStop">;

/**
 * Runs the calls through the tool registry, in order, each in its own
 * transaction with its stored result, none once the turn is asked to stop.
 * "stopped" when the turn stopped before all were answered.
 */
export async function executeToolCalls(run: ToolRun, calls: readonly StepCall[]): Promise<"done" | "stopped"> {
  for (const planned of planCalls(calls)) {
    if (run.signal.aborted) return "stopped";
    const ran = await recordToolCall(run.db, run.turn, async (tx) => {
      if (planned.kind === "answer") return toolMessage(planned.call, planned.outcome);
      return toolMessage(planned.call, await runCall({ db: tx, userId: run.turn.userId }, planned.call));
    });
    if (!ran) {
      await run.checkStop();
      return "stopped";
    }
  }
  return "done";
}

/** One call through the registry; arguments that are not a JSON object are an error the model can read. */
async function runCall(context: ToolContext, call: StoredToolCall): Promise<ToolOutcome> {
  const parsed = parseArguments(call.function.arguments);
  if (!parsed.ok) return { ok: false, error: `Invalid arguments for ${call.function.name}: ${parsed.error}` };
  return runTool(context, call.function.name, parsed.value);
}

function toolMessage(call: StoredToolCall, outcome: ToolOutcome): NewMessage {
  const document = outcome.ok ? outcome.result : { error: outcome.error };
  return { role: "tool", toolCallId: call.id, content: JSON.stringify(document) };
}
