import type { Db, DbClient } from "../db/client.js";
import { Prisma, type ToolApproval, type Turn } from "../generated/prisma/client.js";
import { ErrorCode } from "../lib/errors.js";
import { appendMessages, type NewMessage } from "./messages.js";

/**
 * The approvals of tool calls held for the user (issue 24), as rows: a turn
 * whose step has calls that need approval stores one PENDING row per call and
 * pauses (REQUIRES_ACTION); decisions update the rows (./decisions.ts); a
 * waiting turn that expires, is cancelled or is replaced by a newer message
 * ends here. Every write takes the turn's row lock first, then (through
 * appendMessages or the lease) the conversation's: the order every other
 * writer of a turn uses, so they never deadlock.
 */

/** A call held for approval: its id in the turn, and what binds a decision to it. */
export interface HeldCall {
  toolCallId: string;
  toolName: string;
  /** sha256 of the tool's name and its canonical arguments (chat/approval-policy.ts). */
  argumentsHash: string;
}

/** The turn a call is held in, and whose. */
export interface HeldIn {
  id: string;
  userId: string;
  conversationId: string;
}

/** Stores PENDING approvals for `calls`, expiring `ttlMs` from now by the database's clock; a call already held keeps its row. */
export async function insertApprovals(tx: DbClient, turn: HeldIn, calls: readonly HeldCall[], ttlMs: number): Promise<void> {
  for (const call of calls) {
    await tx.$executeRaw`
      INSERT INTO tool_approvals (user_id, turn_id, conversation_id, tool_call_id, tool_name, arguments_hash, expires_at)
      VALUES (${turn.userId}, ${turn.id}::uuid, ${turn.conversationId}::uuid, ${call.toolCallId}, ${call.toolName},
              ${call.argumentsHash}, now() + make_interval(secs => ${ttlMs / 1000}))
      ON CONFLICT (turn_id, tool_call_id) DO NOTHING`;
  }
}

/** A turn's approvals, by tool call id. */
export async function approvalsOfTurn(db: DbClient, turnId: string): Promise<Map<string, ToolApproval>> {
  const rows = await db.toolApproval.findMany({ where: { turnId } });
  return new Map(rows.map((row) => [row.toolCallId, row]));
}

/** The user's approvals of these calls, by conversation and tool call id (one query for a page of messages). */
export function approvalsOfCalls(db: DbClient, userId: string, calls: readonly { conversationId: string; toolCallId: string }[]) {
  return db.toolApproval.findMany({
    where: {
      userId,
      conversationId: { in: [...new Set(calls.map((call) => call.conversationId))] },
      toolCallId: { in: [...new Set(calls.map((call) => call.toolCallId))] },
    },
    orderBy: { createdAt: "asc" },
  });
}

/** How a waiting turn ends without its calls running. */
export interface WaitEnding {
  status: "COMPLETED" | "CANCELLED";
  stopCode: string;
  /** Why the PENDING approvals became EXPIRED. */
  approvalReason: string;
  /** The tool result of each held call that never ran: what the model reads of it later. */
  notRun: string;
  /** The turn's closing assistant message, if it has one. */
  reply?: string | undefined;
  /** Only if one of its PENDING approvals is past its expiry (the expiry's own check, under the lock). */
  onlyIfDue?: boolean;
}

/** The waiting turn's approvals expired: it ends with stop code APPROVAL_EXPIRED, nothing held runs, and the reply says so. */
export const EXPIRED_ENDING: WaitEnding = {
  status: "COMPLETED",
  stopCode: ErrorCode.APPROVAL_EXPIRED,
  approvalReason: "Not decided in time",
  notRun: "Not run: the user did not approve this call in time.",
  reply:
    "I did not make that change: it needed your approval, and the approval expired before you gave it. Nothing was changed; ask again if you still want it.",
  onlyIfDue: true,
};

/** cancelTurn on a waiting turn. */
export const CANCELLED_ENDING: WaitEnding = {
  status: "CANCELLED",
  stopCode: "CANCELLED",
  approvalReason: "The turn was cancelled",
  notRun: "Not run: the user cancelled the turn before deciding.",
};

/** A new message in the conversation while a turn waited: the newer message is what the user wants now. */
export const REPLACED_ENDING: WaitEnding = {
  status: "CANCELLED",
  stopCode: "CANCELLED",
  approvalReason: "A newer message replaced this turn",
  notRun: "Not run: the user sent a new message instead of deciding.",
};

/**
 * Ends a REQUIRES_ACTION turn inside the caller's transaction: its PENDING
 * approvals EXPIRED, a "not run" tool result for every held call without one
 * (so every call in the log has its result, and its id stays used), the
 * closing message, and the turn's status, in that order. Null (nothing
 * changed) when the turn is not waiting, or with onlyIfDue, not yet due.
 */
export async function endWaitingTurn(tx: DbClient, turnId: string, ending: WaitEnding): Promise<Turn | null> {
  const [locked] = await tx.$queryRaw<{ user_id: string; conversation_id: string; status: string; due: boolean }[]>`
    SELECT user_id, conversation_id, status::text,
           EXISTS (SELECT 1 FROM tool_approvals a WHERE a.turn_id = t.id AND a.status = 'PENDING' AND a.expires_at <= now()) AS due
    FROM turns t WHERE id = ${turnId}::uuid FOR UPDATE`;
  if (!locked || locked.status !== "REQUIRES_ACTION" || (ending.onlyIfDue && !locked.due)) return null;
  await tx.toolApproval.updateMany({ where: { turnId, status: "PENDING" }, data: { status: "EXPIRED", reason: ending.approvalReason } });
  const unanswered = await tx.$queryRaw<{ tool_call_id: string }[]>`
    SELECT a.tool_call_id FROM tool_approvals a
    WHERE a.turn_id = ${turnId}::uuid
      AND NOT EXISTS (SELECT 1 FROM messages m WHERE m.conversation_id = a.conversation_id AND m.role = 'tool' AND m.tool_call_id = a.tool_call_id)
    ORDER BY a.tool_call_id`;
  const messages: NewMessage[] = unanswered.map((row) => ({
    role: "tool",
    toolCallId: row.tool_call_id,
    content: JSON.stringify({ error: ending.notRun }),
  }));
  if (ending.reply !== undefined) messages.push({ role: "assistant", content: ending.reply, stopCode: ending.stopCode });
  if (messages.length > 0) await appendMessages(tx, locked.user_id, locked.conversation_id, messages);
  await tx.$executeRaw`
    UPDATE turns SET status = ${ending.status}::turn_status, stop_code = ${ending.stopCode}, finished_at = now(), lease_id = NULL
    WHERE id = ${turnId}::uuid`;
  return tx.turn.findUniqueOrThrow({ where: { id: turnId } });
}

/**
 * Inside the transaction that stores a new user message: any turn of the
 * conversation still waiting for approval ends first (expired if it is past
 * due, else replaced), so its held calls never run behind the newer message.
 */
export async function settleWaitingTurns(tx: DbClient, conversationId: string): Promise<void> {
  const waiting = await tx.turn.findMany({ where: { conversationId, status: "REQUIRES_ACTION" }, select: { id: true } });
  for (const { id } of waiting) {
    if (!(await endWaitingTurn(tx, id, EXPIRED_ENDING))) await endWaitingTurn(tx, id, REPLACED_ENDING);
  }
}

/** How many due turns one sweep statement looks at. */
const SWEEP_BATCH = 100;

/**
 * Waiting turns with an approval past its expiry (the database's clock),
 * optionally one turn of one user: what expireDueTurns ends.
 */
async function dueTurnIds(db: DbClient, only?: { userId: string; turnId: string }): Promise<string[]> {
  const filter = only ? Prisma.sql`AND t.id = ${only.turnId}::uuid AND t.user_id = ${only.userId}` : Prisma.empty;
  const rows = await db.$queryRaw<{ turn_id: string }[]>`
    SELECT DISTINCT a.turn_id::text FROM tool_approvals a JOIN turns t ON t.id = a.turn_id
    WHERE a.status = 'PENDING' AND a.expires_at <= now() AND t.status = 'REQUIRES_ACTION' ${filter}
    LIMIT ${SWEEP_BATCH}`;
  return rows.map((row) => row.turn_id);
}

/**
 * Ends every waiting turn whose approval expired (or just `only`), each in a
 * transaction of its own, with stop code APPROVAL_EXPIRED. Safe to run from
 * every instance at once: the turn's lock and its status decide who ends it.
 * Returns how many this call ended.
 */
export async function expireDueTurns(db: Db, only?: { userId: string; turnId: string }): Promise<number> {
  let ended = 0;
  for (;;) {
    const ids = await dueTurnIds(db, only);
    let now = 0;
    for (const id of ids) {
      if (await db.$transaction((tx) => endWaitingTurn(tx, id, EXPIRED_ENDING))) now += 1;
    }
    ended += now;
    // A full batch may have more behind it; one where another instance ended them all has not.
    if (ids.length < SWEEP_BATCH || now === 0) return ended;
  }
}

/** Milliseconds until the next PENDING approval expires (0 if one already has), by the database's clock; null if none waits. */
export async function msUntilNextExpiry(db: DbClient): Promise<number | null> {
  const [row] = await db.$queryRaw<{ ms: number | null }[]>`
    SELECT (extract(epoch FROM min(expires_at) - now()) * 1000)::float8 AS ms FROM tool_approvals WHERE status = 'PENDING'`;
  if (!row || row.ms === null) return null;
  return Math.max(0, row.ms);
}
