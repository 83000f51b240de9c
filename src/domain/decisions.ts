import type { Db, DbClient } from "../db/client.js";
import type { Message, ToolApproval, ToolApprovalStatus, Turn } from "../generated/prisma/client.js";
import { AppError, badInput, ErrorCode, notFound } from "../lib/errors.js";
import { Bounds, charLength, requireStorable } from "./bounds.js";
import { takeFreeLease } from "./conversation-log.js";
import { CANCELLED_ENDING, endWaitingTurn, expireDueTurns } from "./tool-approvals.js";

/**
 * The user's decisions on held tool calls (decideToolCalls), and cancelling a
 * waiting turn. A decision is bound to the call it was shown for: the call's
 * id in that turn and the hash of its arguments. Decisions are all or
 * nothing: one stale decision in a list changes nothing. The last decision of
 * a pause resumes the turn, in the same transaction that records it, by taking
 * the conversation's lease for the instance that took it.
 */

export interface Decision {
  toolCallId: string;
  approve: boolean;
  reason?: string | null | undefined;
  /** The ToolApproval.argumentsHash the client was shown; when given, it must still be the call's. */
  argumentsHash?: string | null | undefined;
}

/** The lease a resuming decision takes for its instance. */
export interface ResumeLease {
  leaseId: string;
  ttlMs: number;
}

export interface DecideOutcome {
  turn: Turn;
  /** This call took the last decision: the turn is RUNNING again under `lease`, and its instance runs it. */
  resumed: boolean;
  userMessage: Message | null;
}

function stale(toolCallId: string, status: ToolApprovalStatus, why: string): AppError {
  return new AppError(ErrorCode.STALE_DECISION, `Tool call "${toolCallId}" can no longer be decided: ${why}`, {
    extensions: { toolCallId, approval: status },
  });
}

/** Checks the list's shape before anything is read: each problem names its place in `decisions`. */
export function validateDecisions(decisions: readonly Decision[]): void {
  if (decisions.length === 0) throw badInput("decisions", "must not be empty");
  if (decisions.length > Bounds.decisions.max)
    throw badInput("decisions", `must have at most ${Bounds.decisions.max} entries (got ${decisions.length})`);
  const seen = new Set<string>();
  decisions.forEach((decision, index) => {
    const field = `decisions[${index}]`;
    requireStorable(`${field}.toolCallId`, decision.toolCallId);
    if (charLength(decision.toolCallId) > Bounds.toolCallId.max)
      throw badInput(`${field}.toolCallId`, `must be at most ${Bounds.toolCallId.max} characters`);
    if (seen.has(decision.toolCallId)) throw badInput(`${field}.toolCallId`, `"${decision.toolCallId}" is decided twice in this list`);
    seen.add(decision.toolCallId);
    if (decision.reason !== null && decision.reason !== undefined) {
      requireStorable(`${field}.reason`, decision.reason);
      const length = charLength(decision.reason);
      if (length > Bounds.approvalReason.max)
        throw badInput(`${field}.reason`, `must be at most ${Bounds.approvalReason.max} characters (got ${length})`);
    }
  });
}

type Verdict = "apply" | "same" | AppError | "expired";

/** What one decision comes to against its approval, the turn's status and the database's time. */
function verdict(decision: Decision, approval: ToolApproval, turnStatus: string, now: Date): Verdict {
  const wanted: ToolApprovalStatus = decision.approve ? "APPROVED" : "REJECTED";
  const id = decision.toolCallId;
  if (decision.argumentsHash && decision.argumentsHash !== approval.argumentsHash) {
    return stale(id, approval.status, "its arguments are not the ones that hash (argumentsHash) was shown for");
  }
  if (approval.status === wanted) return "same";
  if (approval.status !== "PENDING")
    return stale(id, approval.status, `it was already ${approval.status.toLowerCase()}${approval.reason ? ` (${approval.reason})` : ""}`);
  if (turnStatus !== "REQUIRES_ACTION") return stale(id, approval.status, "its turn is no longer waiting for a decision");
  if (approval.expiresAt <= now) return "expired";
  return "apply";
}

/** The verdicts of every decision; a toolCallId the turn does not hold is BAD_USER_INPUT. */
function verdicts(decisions: readonly Decision[], approvals: readonly ToolApproval[], turnStatus: string, now: Date): Verdict[] {
  const byId = new Map(approvals.map((approval) => [approval.toolCallId, approval]));
  return decisions.map((decision, index) => {
    const approval = byId.get(decision.toolCallId);
    if (!approval) throw badInput(`decisions[${index}].toolCallId`, `no call "${decision.toolCallId}" of this turn asked for approval`);
    return verdict(decision, approval, turnStatus, now);
  });
}

type Recorded = DecideOutcome | { expired: string };

async function record(tx: DbClient, userId: string, turnId: string, decisions: readonly Decision[], lease: ResumeLease): Promise<Recorded> {
  const [locked] = await tx.$queryRaw<{ status: string; now: Date }[]>`
    SELECT status::text, now() AS now FROM turns WHERE id = ${turnId}::uuid AND user_id = ${userId} FOR UPDATE`;
  if (!locked) throw notFound("Turn");
  const approvals = await tx.toolApproval.findMany({ where: { turnId } });
  const judged = verdicts(decisions, approvals, locked.status, locked.now);
  const refused = judged.find((v): v is AppError => v instanceof AppError);
  if (refused) throw refused;
  const expired = judged.indexOf("expired");
  if (expired >= 0) return { expired: decisions[expired]!.toolCallId };
  const applying = decisions.filter((_, index) => judged[index] === "apply");
  for (const decision of applying) {
    await tx.$executeRaw`
      UPDATE tool_approvals SET status = ${decision.approve ? "APPROVED" : "REJECTED"}::tool_approval_status,
             reason = ${decision.approve ? null : (decision.reason ?? null)}, decided_at = now()
      WHERE turn_id = ${turnId}::uuid AND tool_call_id = ${decision.toolCallId}`;
  }
  if (applying.length === 0) return { turn: await tx.turn.findUniqueOrThrow({ where: { id: turnId } }), resumed: false, userMessage: null };
  await tx.$executeRaw`UPDATE turns SET last_decision_at = now() WHERE id = ${turnId}::uuid`;
  const waiting = await tx.toolApproval.count({ where: { turnId, status: "PENDING" } });
  return waiting === 0
    ? resume(tx, turnId, lease, applying.at(-1)!.toolCallId)
    : { turn: await tx.turn.findUniqueOrThrow({ where: { id: turnId } }), resumed: false, userMessage: null };
}

/** Every held call is decided: the turn runs again, under a lease taken here for the deciding instance. */
async function resume(tx: DbClient, turnId: string, lease: ResumeLease, lastDecided: string): Promise<DecideOutcome> {
  const turn = await tx.turn.findUniqueOrThrow({ where: { id: turnId }, include: { userMessage: true } });
  // Only a newer turn of the conversation can hold it, and that turn has replaced this one.
  if (!(await takeFreeLease(tx, turn.conversationId, lease.leaseId, lease.ttlMs))) {
    throw stale(lastDecided, "PENDING", "a newer message in this conversation has replaced its turn");
  }
  const { userMessage, ...resumed } = await tx.turn.update({
    where: { id: turnId },
    data: { status: "RUNNING", leaseId: lease.leaseId, cancelRequestedAt: null },
    include: { userMessage: true },
  });
  return { turn: resumed, resumed: true, userMessage };
}

/**
 * Records the user's decisions on a waiting turn's held calls. NOT_FOUND for
 * another user's turn; BAD_USER_INPUT for a call the turn does not hold;
 * STALE_DECISION (nothing changed) for a call decided the other way, expired,
 * or of a turn no longer waiting; the same decision again changes nothing. A
 * turn past its approval's expiry is ended APPROVAL_EXPIRED first (lazily,
 * beside the sweep), and its decision is then stale.
 */
export async function decideToolCalls(
  db: Db,
  userId: string,
  turnId: string,
  decisions: readonly Decision[],
  lease: ResumeLease,
): Promise<DecideOutcome> {
  validateDecisions(decisions);
  await expireDueTurns(db, { userId, turnId });
  const recorded = await db.$transaction((tx) => record(tx, userId, turnId, decisions, lease));
  if (!("expired" in recorded)) return recorded;
  // It expired between the sweep above and the lock: end it now, then refuse.
  await expireDueTurns(db, { userId, turnId });
  throw stale(recorded.expired, "EXPIRED", "its approval expired");
}

/**
 * cancelTurn on a turn waiting for approval: it ends CANCELLED and nothing
 * held runs (or APPROVAL_EXPIRED, if it was already past due). Null when the
 * turn is not waiting (it may have resumed meanwhile: cancel it as a running one).
 */
export async function cancelWaitingTurn(db: Db, userId: string, turnId: string): Promise<Turn | null> {
  if ((await expireDueTurns(db, { userId, turnId })) > 0) return db.turn.findUniqueOrThrow({ where: { id: turnId } });
  return db.$transaction(async (tx) => {
    const owned = await tx.turn.count({ where: { id: turnId, userId } });
    if (owned === 0) throw notFound("Turn");
    return endWaitingTurn(tx, turnId, CANCELLED_ENDING);
  });
}
