import type { Message } from "../generated/prisma/client.js";
import { storedToolCalls, type StoredToolCall } from "./history.js";
import { isWriteTool, parseArguments } from "./tools.js";

/**
 * The steps of a turn so far, read from its messages: what the stop
 * conditions and the tool execution look at. Pure: the log is the state.
 */

/** One tool call of a step, with what the loop needs to know of it. */
export interface StepCall {
  call: StoredToolCall;
  /** `name(arguments)`, arguments in a canonical order: two calls with one signature do the same thing. */
  signature: string;
  /** It repeats an earlier call of the turn (see markRepeats), so it is answered without running. */
  repeats: boolean;
  /** Its result is stored. */
  answered: boolean;
}

/** A model call that asked for tools, and its calls. */
export interface TurnStep {
  calls: StepCall[];
}

function canonical(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonical).join(",")}]`;
  if (value !== null && typeof value === "object") {
    const entries = Object.entries(value as Record<string, unknown>).sort(([a], [b]) => a.localeCompare(b));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonical(v)}`).join(",")}}`;
  }
  return JSON.stringify(value) ?? "null";
}

export function callSignature(call: StoredToolCall): string {
  const parsed = parseArguments(call.function.arguments);
  return `${call.function.name}(${parsed.ok ? canonical(parsed.value) : call.function.arguments})`;
}

/**
 * Which calls, in turn order, repeat an earlier one: a write repeats any
 * earlier identical call; a read, one with no write run in between (reading
 * again after a change is legitimate). A repeated write is not run, so it
 * changes nothing that a later read could see.
 */
export function markRepeats(calls: readonly StoredToolCall[]): boolean[] {
  const seen = new Map<string, number>();
  let writes = 0;
  return calls.map((call) => {
    const signature = callSignature(call);
    const write = isWriteTool(call.function.name);
    const previous = seen.get(signature);
    const repeats = previous !== undefined && (write || previous === writes);
    seen.set(signature, writes);
    if (write && !repeats) writes += 1;
    return repeats;
  });
}

/** The turn's steps, in order, from its messages in seq order (as turnMessages reads them). */
export function turnSteps(messages: readonly Pick<Message, "role" | "toolCalls" | "toolCallId">[]): TurnStep[] {
  const answered = new Set(messages.filter((m) => m.role === "tool").map((m) => m.toolCallId));
  const byStep = messages
    .filter((message) => message.role === "assistant")
    .map((message) => storedToolCalls(message))
    .filter((calls) => calls.length > 0);
  const repeats = markRepeats(byStep.flat());
  let index = 0;
  return byStep.map((calls) => ({
    calls: calls.map((call) => ({
      call,
      signature: callSignature(call),
      repeats: repeats[index++] === true,
      answered: answered.has(call.id),
    })),
  }));
}

/** Calls without a stored result, in turn order: what the loop runs before it calls the model again. */
export function unansweredCalls(steps: readonly TurnStep[]): StepCall[] {
  return steps.flatMap((step) => step.calls).filter((call) => !call.answered);
}
