/**
 * What the model sends is untrusted input, like a client's: this module makes
 * each string of a model answer storable before it reaches the conversation
 * log. Postgres text and jsonb cannot hold U+0000, jsonb refuses a lone UTF-16
 * surrogate (and a text column would get U+FFFD in its place), and nothing
 * bounds a string's length on the model's side.
 *
 * Free text (the answer, a plan) is cleaned; names and ids, which the loop
 * matches on, are never cleaned into a valid one: a bad id is replaced by a
 * fresh one, a bad tool name stays unknown. Arguments keep their meaning and
 * reach the tool, whose own validation refuses what the domain refuses.
 */

/** The longest tool-call id kept; a longer one is replaced, as a missing one is. */
export const MAX_TOOL_CALL_ID = 100;
/** The longest tool name kept whole; the longest real one has 13 characters. */
export const MAX_TOOL_NAME = 100;

const NUL = /\u0000/g;
/** A NUL, or a UTF-16 surrogate that is not half of a pair. */
const UNSTORABLE = /\u0000|[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g;
/** Printable, no whitespace: what every provider's call ids look like. */
const CALL_ID = /^[\x21-\x7E]+$/;

/** Free text as Postgres can store it: NULs dropped, lone surrogates as U+FFFD. */
export function storable(text: string): string {
  return text.replace(NUL, "").toWellFormed();
}

/**
 * An answer delta: NULs dropped only. Half of a surrogate pair may end one
 * delta and its other half start the next; the whole text is made
 * well-formed when it is stored (see storable).
 */
export function storableDelta(text: string): string {
  return text.replace(NUL, "");
}

/** The model's id for a call, or undefined when it cannot be kept as it is (a fresh one is made). */
export function usableCallId(id: string | undefined): string | undefined {
  if (id === undefined || id.length > MAX_TOOL_CALL_ID || !CALL_ID.test(id)) return undefined;
  return id;
}

/**
 * A tool name as stored. A name that is not storable, or too long, keeps a
 * readable form that can never match a tool (U+FFFD and "…" are in no tool's
 * name), so the call is answered "Unknown tool", as any wrong name is.
 */
export function storableToolName(name: string): string {
  const readable = name.replace(UNSTORABLE, "\uFFFD");
  const points = [...readable];
  return points.length <= MAX_TOOL_NAME ? readable : `${points.slice(0, MAX_TOOL_NAME).join("")}…`;
}

/**
 * A call's arguments (JSON text) as stored: each NUL or lone surrogate
 * becomes its JSON escape. Inside a JSON string that is the same value, so
 * the tool sees exactly what the model sent and refuses it as the domain
 * refuses it from a client; outside one, the text was not valid JSON anyway.
 */
export function storableArguments(json: string): string {
  return json.replace(UNSTORABLE, (unit) => `\\u${unit.charCodeAt(0).toString(16).padStart(4, "0")}`);
}
