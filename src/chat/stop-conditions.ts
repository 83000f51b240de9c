import { ErrorCode } from "../lib/errors.js";
import type { TurnStep } from "./turn-steps.js";

/**
 * When the loop stops calling the model, as the AI SDK's `stopWhen` says it:
 * each condition is a function of the steps so far, checked once a step's
 * calls have all run (before the next model call); the turn ends at the
 * first that holds. A turn also ends when the model answers without asking
 * for tools, or a step bound, a timeout, a failure or a stop ends it: those
 * come from the model call, not from the steps.
 */
export type StopCondition = (state: { steps: readonly TurnStep[] }) => boolean;

/** True once `count` steps (model calls that asked for tools) have run. */
export function stepCountIs(count: number): StopCondition {
  return ({ steps }) => steps.length >= count;
}

/** True when the latest step asked for a call it had already made (see markRepeats): the model is going round in circles. */
export const hasRepeatedToolCall: StopCondition = ({ steps }) => steps.at(-1)?.calls.some((call) => call.repeats) ?? false;

/** A condition with the stop code the turn ends with, and what its stop message names. */
export interface StopRule {
  code: ErrorCode;
  holds: StopCondition;
  detail(steps: readonly TurnStep[]): string;
}

/** Where the latest step repeated itself: the first repeated call's signature. */
function firstRepeat(steps: readonly TurnStep[]): string {
  return steps.at(-1)?.calls.find((call) => call.repeats)?.signature ?? "";
}

/** The conditions of a turn, in the order they are checked: a repeat is named even in the last step allowed. */
export function stopRules(maxSteps: number): StopRule[] {
  return [
    { code: ErrorCode.ASSISTANT_REPEATED_TOOL_CALL, holds: hasRepeatedToolCall, detail: firstRepeat },
    { code: ErrorCode.ASSISTANT_STEP_LIMIT, holds: stepCountIs(maxSteps), detail: () => String(maxSteps) },
  ];
}

/** The first rule that holds, with its detail; undefined when the loop goes on. */
export function firstStop(rules: readonly StopRule[], steps: readonly TurnStep[]): { code: ErrorCode; detail: string } | undefined {
  const rule = rules.find((candidate) => candidate.holds({ steps }));
  return rule && { code: rule.code, detail: rule.detail(steps) };
}
