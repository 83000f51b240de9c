import { createHash } from "node:crypto";

/**
 * What the realtime triggers send (prisma/migrations/*_realtime_notify): ids
 * only, never data, on one channel per user. A notification is a hint that
 * something committed; the rows are always re-read.
 */

export type TaskOp = "INSERT" | "UPDATE" | "DELETE";

export interface MessageHint {
  k: "message";
  /** Message id. */
  i: string;
  /** Conversation id. */
  c: string;
  /** The message's seq. */
  s: number;
}

export interface TaskHint {
  k: "task";
  op: TaskOp;
  /** Task id. */
  i: string;
}

export type Hint = MessageHint | TaskHint;

/** Must match todo_realtime_channel() in the realtime migration. */
export function userChannel(userId: string): string {
  return `todo_u_${createHash("md5").update(userId, "utf8").digest("hex")}`;
}

/** The hint in a payload, or undefined for anything this version does not know. */
export function parseHint(payload: string): Hint | undefined {
  let value: unknown;
  try {
    value = JSON.parse(payload);
  } catch {
    return undefined;
  }
  if (typeof value !== "object" || value === null) return undefined;
  const note = value as Record<string, unknown>;
  if (note.k === "message" && typeof note.c === "string" && typeof note.s === "number" && typeof note.i === "string") {
    return { k: "message", i: note.i, c: note.c, s: note.s };
  }
  if (note.k === "task" && typeof note.i === "string" && (note.op === "INSERT" || note.op === "UPDATE" || note.op === "DELETE")) {
    return { k: "task", op: note.op, i: note.i };
  }
  return undefined;
}
