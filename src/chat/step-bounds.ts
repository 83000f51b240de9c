import { charLength } from "../domain/bounds.js";

/**
 * The bounds on one model call (a step): how many tool calls it may make
 * (CHAT_MAX_TOOL_CALLS_PER_STEP) and how long its answer may be
 * (CHAT_MAX_ANSWER_CHARS). The stream is read only up to them: past either,
 * the call is closed and the turn ends with a stop code that says which.
 */
export interface StepBounds {
  maxToolCalls: number;
  /** In characters (code points), as every length in this API. Also caps a tool plan, and a reasoning model's thinking. */
  maxAnswerChars: number;
}

export const DEFAULT_STEP_BOUNDS: StepBounds = { maxToolCalls: 16, maxAnswerChars: 20_000 };

/**
 * The longest arguments of one tool call, in UTF-16 units: the largest valid
 * ones (update_task with a 200-character title and a 1000-character
 * description, every character \u-escaped, astral ones as pairs) are under
 * 15,000. Longer ones make the step unusable.
 */
export const MAX_TOOL_ARGUMENTS_CHARS = 20_000;

/** Why the reading of a step stopped before its end. */
export type StepOverflow = "tool-calls" | "answer" | "arguments";

/**
 * How many calls a step makes, as the per-step bound counts them: each call
 * is one. Approval (issue 24) asks before a step's writes run; a step that
 * writes in bulk should count the same way there, so it is counted here, once.
 */
export function callsCounted(calls: readonly { name: string }[]): number {
  return calls.length;
}

/** What ends an answer cut at the bound, so a reader sees it was cut. */
export function answerCutMarker(maxChars: number): string {
  return `… [answer cut at ${maxChars.toLocaleString("en-US")} characters]`;
}

/** The message of the error beside a cut answer's payload (the answer itself is the reply). */
export const ANSWER_CUT_ERROR = "The assistant's answer was longer than the server keeps and was cut; the reply ends where it was cut.";

/** The first `count` code points of `text`. */
export function firstCodePoints(text: string, count: number): string {
  if (count <= 0) return "";
  let taken = 0;
  let index = 0;
  for (const point of text) {
    if (taken === count) break;
    taken += 1;
    index += point.length;
  }
  return text.slice(0, index);
}

/** Text that grows up to `max` code points; what would go past it is left out, and `cut` says so. */
export class CappedText {
  text = "";
  cut = false;
  private chars = 0;

  constructor(private readonly max: number) {}

  /** Appends what fits of `piece`; returns the part appended. */
  append(piece: string): string {
    if (this.cut || piece === "") return "";
    const length = charLength(piece);
    const room = this.max - this.chars;
    const taken = length <= room ? piece : firstCodePoints(piece, room);
    if (length > room) this.cut = true;
    this.text += taken;
    this.chars += Math.min(length, room);
    return taken;
  }
}
