import type { Cohere } from "cohere-ai";
import type { Message } from "../generated/prisma/client.js";
import { localIso } from "../lib/zoned-time.js";

/** A tool call as stored on an assistant message: Cohere v2's own shape. */
export interface StoredToolCall {
  id: string;
  type: "function";
  function: { name: string; arguments: string };
}

export function storedToolCalls(message: Pick<Message, "toolCalls">): StoredToolCall[] {
  return Array.isArray(message.toolCalls) ? (message.toolCalls as unknown as StoredToolCall[]) : [];
}

/** The JSON document a tool message carries: the result, or `{ error }`. */
export function toolDocument(message: Pick<Message, "content">): Record<string, unknown> {
  try {
    const value: unknown = JSON.parse(message.content);
    if (value !== null && typeof value === "object" && !Array.isArray(value)) return value as Record<string, unknown>;
  } catch {
    // Stored by something other than this loop: hand the model the raw text.
  }
  return { text: message.content };
}

/** Said in the preamble when the window leaves the start of the conversation out. */
export const OLDER_MESSAGES_NOTE =
  "Older messages of this conversation are not shown here; they may mention tasks that have changed since. Call list_tasks for the current state of the tasks.";

/** When the model is called: the instant, and the user's time zone it is told it in. */
export interface ModelTime {
  now: Date;
  timezone: string;
}

const WEEKDAY = new Map<string, Intl.DateTimeFormat>();

function weekday(time: ModelTime): string {
  let format = WEEKDAY.get(time.timezone);
  if (format === undefined) {
    format = new Intl.DateTimeFormat("en-US", { weekday: "long", timeZone: time.timezone });
    WEEKDAY.set(time.timezone, format);
  }
  return format.format(time.now);
}

/**
 * The current date and time in the user's zone, with its offset and the
 * zone's name, so the model resolves "tomorrow at 5pm" to the user's
 * tomorrow and writes times the tools take as they are.
 */
export function timeNote(time: ModelTime): string {
  const local = localIso(time.now.getTime(), time.timezone);
  return (
    `The user's time zone is ${time.timezone}. It is now ${weekday(time)} ${local.slice(0, 10)}, ${local.slice(11, 16)} there (${local}). ` +
    "Tools take and return local ISO 8601 times with the offset (e.g. 2026-03-30T17:00:00+02:00); a date alone (YYYY-MM-DD) means all day."
  );
}

export function systemPreamble(time: ModelTime, olderOmitted = false): string {
  return [
    "You are a helpful assistant that manages the user's todo list.",
    "Use the tools to add, list, complete, delete and update tasks; never claim to have changed a task without calling a tool.",
    "Refer to tasks by the ids the tools return. If a request is ambiguous, list the tasks first.",
    "When a tool returns an error, explain it plainly or try a corrected call.",
    "Answer briefly.",
    "For a task that repeats, give add_task or update_task an RFC 5545 rule (e.g. FREQ=WEEKLY;BYDAY=MO,TH) and a due time for its first occurrence.",
    timeNote(time),
    ...(olderOmitted ? [OLDER_MESSAGES_NOTE] : []),
  ].join(" ");
}

/**
 * What the model is shown of a stored message: a FAILED answer, or one still
 * STREAMING (its turn died), was never said; a CANCELLED answer was, as far as
 * it got, unless nothing arrived.
 */
export function isShownToModel(message: Pick<Message, "role" | "status" | "content">): boolean {
  if (message.status === "COMPLETE") return true;
  return message.role === "assistant" && message.status === "CANCELLED" && message.content !== "";
}

/**
 * Turns stored messages into Cohere v2 messages, after the system preamble.
 * Every tool call gets its result: Cohere answers 400 when one is missing. A
 * call without a stored result (never the case for this loop's own writes,
 * which commit together) is answered with an error document rather than dropped.
 */
export function buildHistory(messages: readonly Message[], time: ModelTime, olderOmitted = false): Cohere.ChatMessageV2[] {
  const history: Cohere.ChatMessageV2[] = [{ role: "system", content: systemPreamble(time, olderOmitted) }];
  const answered = new Set(messages.filter((m) => m.role === "tool" && m.toolCallId).map((m) => m.toolCallId));
  for (const message of messages) {
    if (!isShownToModel(message)) continue;
    if (message.role === "user") {
      history.push({ role: "user", content: message.content });
    } else if (message.role === "assistant") {
      const calls = storedToolCalls(message);
      if (calls.length === 0) {
        history.push({ role: "assistant", content: message.content });
        continue;
      }
      history.push({
        role: "assistant",
        ...(message.toolPlan ? { toolPlan: message.toolPlan } : {}),
        toolCalls: calls.map((call) => ({ id: call.id, type: "function", function: { ...call.function } })),
      });
      for (const call of calls) {
        if (answered.has(call.id)) continue;
        history.push({ role: "tool", toolCallId: call.id, content: [toolContent({ error: "This tool call was not executed." })] });
      }
    } else if (message.toolCallId) {
      history.push({ role: "tool", toolCallId: message.toolCallId, content: [toolContent(toolDocument(message))] });
    }
  }
  return history;
}

function toolContent(data: Record<string, unknown>): Cohere.ToolContent {
  return { type: "document", document: { data } };
}
