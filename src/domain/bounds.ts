import { badInput } from "../lib/errors.js";

/** The product's bounds, shared by GraphQL inputs, the assistant's tools and MCP. */
export const Bounds = {
  taskTitle: { min: 1, max: 200 },
  taskDescription: { max: 1000 },
  conversationTitle: { max: 200 },
  messageContent: { min: 1, max: 5000 },
  clientMessageId: { min: 1, max: 100 },
  /** decideToolCalls: a reason given with a decision, the length of a tool call id, and decisions per call (a step holds at most CHAT_MAX_TOOL_CALLS_PER_STEP, at most 1000). */
  approvalReason: { max: 1000 },
  toolCallId: { max: 200 },
  decisions: { max: 1000 },
  /** A task's labels: how many, and each one's length (after trimming). */
  taskLabels: { max: 20 },
  taskLabel: { min: 1, max: 40 },
  /** An RRULE value (FREQ=WEEKLY;BYDAY=MO,TH …). */
  recurrence: { max: 200 },
  /** Task.nextOccurrences(first:). */
  nextOccurrences: { min: 1, max: 50 },
} as const;

/** Length in characters as Postgres counts them (code points), not UTF-16 units. */
export function charLength(value: string): number {
  let length = 0;
  for (const _ of value) length += 1;
  return length;
}

/** Trims and checks a required text; `field` names it in the error. */
export function requiredText(field: string, value: string, bounds: { min: number; max: number }): string {
  requireStorable(field, value);
  const trimmed = value.trim();
  const length = charLength(trimmed);
  if (length < bounds.min) throw badInput(field, "must not be empty");
  if (length > bounds.max) throw badInput(field, `must be at most ${bounds.max} characters (got ${length})`);
  return trimmed;
}

/** Trims an optional text; empty becomes null so "clear it" has one spelling. */
export function optionalText(field: string, value: string | null, bounds: { max: number }): string | null {
  if (value === null) return null;
  requireStorable(field, value);
  const trimmed = value.trim();
  if (trimmed === "") return null;
  const length = charLength(trimmed);
  if (length > bounds.max) throw badInput(field, `must be at most ${bounds.max} characters (got ${length})`);
  return trimmed;
}

/**
 * Every stored string passes here. Postgres text cannot hold U+0000 (without
 * this check it fails as an internal error), and a lone UTF-16 surrogate (a
 * JSON "\ud800" escape) has no UTF-8 form: the driver would store U+FFFD in
 * its place, and input is never silently replaced.
 */
export function requireStorable(field: string, value: string): void {
  if (value.includes("\u0000")) throw badInput(field, "must not contain the NUL character (U+0000)");
  if (!value.isWellFormed()) throw badInput(field, "must be well-formed Unicode (it has a lone surrogate, e.g. an unpaired \\ud800 escape)");
}

/**
 * A task's labels as stored: each trimmed and bounded, duplicates that differ
 * only in case dropped (the first spelling stays), in the order given.
 */
export function normalizeLabels(field: string, labels: readonly string[]): string[] {
  const kept = new Map<string, string>();
  labels.forEach((label, index) => {
    const value = requiredText(`${field}[${index}]`, label, Bounds.taskLabel);
    const key = value.toLowerCase();
    if (!kept.has(key)) kept.set(key, value);
  });
  if (kept.size > Bounds.taskLabels.max) throw badInput(field, `must have at most ${Bounds.taskLabels.max} labels (got ${kept.size})`);
  return [...kept.values()];
}
