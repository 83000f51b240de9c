import type { TaskEventFields } from "./documents";
import type { ResultOf } from "./graphql";

export type TaskEventView = ResultOf<typeof TaskEventFields>;

/** Who made a change, as a person reads it. */
export const ACTOR_LABELS: Record<TaskEventView["actor"], string> = {
  USER: "You",
  ASSISTANT: "The assistant",
  MCP: "An MCP client",
  UNDO: "An undo",
  SYSTEM: "The system",
};

type Row = Record<string, unknown> | null;

function rowOf(value: unknown): Row {
  return value !== null && typeof value === "object" && !Array.isArray(value) ? (value as Record<string, unknown>) : null;
}

const quoted = (row: Row) => `“${String(row?.title ?? "a task")}”`;

/** What changed between two versions of a task, in a few words: "renamed “a” to “b”, completed it". */
function updateText(before: Row, after: Row): string {
  const parts: string[] = [];
  if (before?.title !== after?.title) parts.push(`renamed ${quoted(before)} to ${quoted(after)}`);
  if (before?.completed !== after?.completed) parts.push(after?.completed ? `completed ${quoted(after)}` : `reopened ${quoted(after)}`);
  if (before?.description !== after?.description) parts.push(`changed the description of ${quoted(after)}`);
  const text = parts.length > 0 ? parts.join(", ") : `changed ${quoted(after)}`;
  return text.charAt(0).toUpperCase() + text.slice(1);
}

/** One change, as the chat's change list and a task's history say it: "Added “buy milk”". */
export function describeEvent(event: TaskEventView): string {
  const before = rowOf(event.before);
  const after = rowOf(event.after);
  if (event.kind === "CREATED") return `Added ${quoted(after)}`;
  if (event.kind === "DELETED") return `Deleted ${quoted(before)}`;
  return updateText(before, after);
}
