import { Prisma } from "../generated/prisma/client.js";

/**
 * The cause of a task write, as the tasks triggers record it in task_events
 * (prisma/migrations/20261207100000_task_events). It travels in
 * transaction-local settings (set_config(..., true)), never in a column a
 * client could write, and a write that sets none is recorded as SYSTEM.
 *
 * Every task write in domain/ names its cause; nothing above domain/ sets one.
 */
export type Cause =
  /** GraphQL (and so the web client). */
  | { actor: "USER" }
  /** An MCP tool call. */
  | { actor: "MCP" }
  /** A tool call of a chat turn. */
  | { actor: "ASSISTANT"; turnId: string; toolCallId: string }
  /** An undo of `undoneTurnId`; `turnId`/`toolCallId` when the assistant's undo_turn asked for it. */
  | { actor: "UNDO"; undoneTurnId: string; turnId?: string | undefined; toolCallId?: string | undefined };

export const USER_CAUSE: Cause = { actor: "USER" };
export const MCP_CAUSE: Cause = { actor: "MCP" };

/** The settings the triggers read; "" is unset (set_config cannot unset). */
function settingsOf(cause: Cause): { actor: string; turn: string; toolCall: string; undone: string } {
  switch (cause.actor) {
    case "ASSISTANT":
      return { actor: cause.actor, turn: cause.turnId, toolCall: cause.toolCallId, undone: "" };
    case "UNDO":
      return { actor: cause.actor, turn: cause.turnId ?? "", toolCall: cause.toolCallId ?? "", undone: cause.undoneTurnId };
    default:
      return { actor: cause.actor, turn: "", toolCall: "", undone: "" };
  }
}

/**
 * A one-row FROM item that sets the cause for the rest of the transaction.
 * Put in the write itself (`INSERT … SELECT … FROM ${causeFrom(c)}`,
 * `UPDATE … FROM`, `DELETE … USING`), it costs no statement of its own and
 * needs no transaction around a single write: Postgres evaluates it before
 * the row is written, and the triggers read it after. All four settings are
 * written every time, so an earlier cause in the same transaction never
 * leaks into this one.
 */
export function causeFrom(cause: Cause): Prisma.Sql {
  const s = settingsOf(cause);
  return Prisma.sql`(SELECT set_config('todo.actor', ${s.actor}, true) AS actor,
    set_config('todo.turn', ${s.turn}, true) AS turn,
    set_config('todo.tool_call', ${s.toolCall}, true) AS tool_call,
    set_config('todo.undone_turn', ${s.undone}, true) AS undone_turn) AS cause`;
}
