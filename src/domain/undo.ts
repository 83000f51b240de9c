import type { Db, DbClient } from "../db/client.js";
import type { Task, TaskEvent, Turn } from "../generated/prisma/client.js";
import { AppError, ErrorCode, notFound } from "../lib/errors.js";
import { toGlobalId } from "../lib/ids.js";
import { interruptIfDead } from "./conversation-log.js";
import { causeFrom, type Cause } from "./provenance.js";

/**
 * Undoing a turn: every task change it made (task_events with its turn_id),
 * reverted in one transaction, newest first, one write per task: back to the
 * state before the turn's first change of it (a task it created is deleted,
 * one it deleted comes back with its id). The reverting writes are recorded
 * like any other, as UNDO of that turn, so an undo made by a turn can itself
 * be undone by undoing that turn.
 *
 * Refused, changing nothing, when the turn is not the user's (NOT_FOUND), is
 * running (TURN_RUNNING), was undone already (ALREADY_UNDONE), or when any of
 * its tasks was changed since by anything else (CONFLICT, extensions.taskIds).
 * The turn row and the task rows are locked first, so a write racing the
 * undo either commits before the check (and the undo refuses) or waits for
 * the undo to commit (and applies on top of it): never half of each.
 */

export interface UndoOutcome {
  turn: Turn;
  /** The events the undo's writes made, in the order it made them. */
  reverted: TaskEvent[];
  /** The tasks the undo wrote, as they are now (a task it deleted is not among them). */
  tasks: Task[];
}

export interface UndoRequest {
  userId: string;
  turnId: string;
  /** Only a turn of this conversation: another is NOT_FOUND (the assistant's undo_turn). */
  conversationId?: string | undefined;
  /** The tool call that asks for the undo, recorded with it (the assistant's undo_turn). */
  requestedBy?: { turnId: string; toolCallId: string } | undefined;
}

/** One task the turn changed, and what it goes back to (null: it did not exist). */
interface Change {
  taskId: string;
  firstSeq: bigint;
  target: unknown;
}

/** undoTurn as a client asks for it. A RUNNING turn whose instance died is ended first: it is not running. */
export async function undoTurnForUser(db: Db, userId: string, turnId: string): Promise<UndoOutcome> {
  await interruptIfDead(db, userId, turnId);
  return db.$transaction((tx) => undoTurn(tx, { userId, turnId }));
}

/** Runs `work` inside the caller's transaction, all or nothing: a savepoint, rolled back to if `work` throws. */
export async function withSavepoint<T>(tx: DbClient, work: (tx: DbClient) => Promise<T>): Promise<T> {
  await tx.$executeRaw`SAVEPOINT undo_turn`;
  try {
    const result = await work(tx);
    await tx.$executeRaw`RELEASE SAVEPOINT undo_turn`;
    return result;
  } catch (error) {
    await tx.$executeRaw`ROLLBACK TO SAVEPOINT undo_turn`;
    throw error;
  }
}

/** The undo, inside a transaction (or savepoint) the caller owns: a refusal throws before anything is written. */
export async function undoTurn(tx: DbClient, request: UndoRequest): Promise<UndoOutcome> {
  const { userId, turnId } = request;
  await lockTurn(tx, request);
  const changes = await changesOf(tx, userId, turnId);
  const ids = changes.map((change) => change.taskId);
  if (changes.length > 0) {
    await lockTasks(tx, userId, ids);
    const conflicts = await changedSince(tx, userId, turnId, changes);
    if (conflicts.length > 0) throw conflict(conflicts);
    const cause: Cause = { actor: "UNDO", undoneTurnId: turnId, ...request.requestedBy };
    const targets = JSON.stringify(changes.map((change) => ({ task_id: change.taskId, row: change.target })));
    await tx.$queryRaw`SELECT todo_restore_tasks(${userId}, ${targets}::jsonb) AS written FROM ${causeFrom(cause)}`;
  }
  await tx.$executeRaw`UPDATE turns SET undone_at = now() WHERE id = ${turnId}::uuid`;
  const [turn, reverted, tasks] = await Promise.all([
    tx.turn.findUniqueOrThrow({ where: { id: turnId } }),
    ids.length === 0 ? [] : tx.taskEvent.findMany({ where: { userId, undoneTurnId: turnId, taskId: { in: ids } }, orderBy: { seq: "asc" } }),
    ids.length === 0 ? [] : tx.task.findMany({ where: { userId, id: { in: ids } } }),
  ]);
  const order = new Map(ids.map((id, index) => [id, index]));
  return { turn, reverted, tasks: tasks.sort((a, b) => (order.get(a.id) ?? 0) - (order.get(b.id) ?? 0)) };
}

/** Why a turn in this state cannot be undone, or undefined if it can be (as far as the turn itself goes). */
function turnRefusal(turn: { status: string; undone: boolean }): AppError | undefined {
  // A turn waiting for approval (REQUIRES_ACTION) has not ended either: it resumes once its calls are decided.
  if (turn.status === "RUNNING" || turn.status === "REQUIRES_ACTION") {
    return new AppError(ErrorCode.TURN_RUNNING, "The turn is still running: undo it once it has ended (or stop it with cancelTurn)");
  }
  if (turn.undone) return new AppError(ErrorCode.ALREADY_UNDONE, "The turn was already undone");
  return undefined;
}

function conflict(taskIds: readonly string[]): AppError {
  return new AppError(ErrorCode.CONFLICT, `Cannot undo the turn: ${taskIds.length} of its tasks changed since; nothing was changed`, {
    extensions: { taskIds: taskIds.map((id) => toGlobalId("Task", id)) },
  });
}

/** Locks the turn row for the rest of the transaction, and refuses what cannot be undone. */
async function lockTurn(tx: DbClient, request: UndoRequest): Promise<void> {
  const [turn] = await tx.$queryRaw<{ conversation_id: string; status: string; undone: boolean }[]>`
    SELECT conversation_id::text, status::text, undone_at IS NOT NULL AS undone FROM turns
    WHERE id = ${request.turnId}::uuid AND user_id = ${request.userId}
    FOR UPDATE`;
  if (!turn || (request.conversationId !== undefined && turn.conversation_id !== request.conversationId)) throw notFound("Turn");
  const refusal = turnRefusal(turn);
  if (refusal) throw refusal;
}

/** Whether undoTurn would succeed now, and if not, why: what a client shows beside its Undo. */
export interface UndoCheck {
  canUndo: boolean;
  /** TURN_RUNNING, ALREADY_UNDONE, CONFLICT, or NOTHING_TO_UNDO (the turn changed no task); null when it can. */
  code: string | null;
  reason: string | null;
  /** CONFLICT: the tasks changed since (global ids). */
  taskIds: string[];
}

/** undoTurn's checks without its locks or writes: the answer holds for the moment it was read. */
export async function undoCheck(db: DbClient, userId: string, turnId: string): Promise<UndoCheck> {
  const [turn] = await db.$queryRaw<{ status: string; undone: boolean }[]>`
    SELECT status::text, undone_at IS NOT NULL AS undone FROM turns WHERE id = ${turnId}::uuid AND user_id = ${userId}`;
  if (!turn) throw notFound("Turn");
  const refusal = turnRefusal(turn);
  const changes = refusal ? [] : await changesOf(db, userId, turnId);
  const conflicts = changes.length > 0 ? await changedSince(db, userId, turnId, changes) : [];
  if (refusal) return { canUndo: false, code: refusal.code, reason: refusal.message, taskIds: [] };
  if (conflicts.length > 0) {
    const count = conflicts.length === 1 ? "1 of the tasks it changed was" : `${conflicts.length} of the tasks it changed were`;
    return {
      canUndo: false,
      code: ErrorCode.CONFLICT,
      reason: `${count} changed again since`,
      taskIds: conflicts.map((id) => toGlobalId("Task", id)),
    };
  }
  if (changes.length === 0) return { canUndo: false, code: "NOTHING_TO_UNDO", reason: "The turn changed no task", taskIds: [] };
  return { canUndo: true, code: null, reason: null, taskIds: [] };
}

/** Each task the turn changed, with its state before the turn's first change of it; the last changed first. */
function changesOf(tx: DbClient, userId: string, turnId: string): Promise<Change[]> {
  return tx.$queryRaw<Change[]>`
    SELECT task_id::text AS "taskId", min(seq) AS "firstSeq", (array_agg(before ORDER BY seq))[1] AS target
    FROM task_events WHERE turn_id = ${turnId}::uuid AND user_id = ${userId}
    GROUP BY task_id
    ORDER BY max(seq) DESC`;
}

/** Locks the tasks that exist, in one order, so that two undos sharing tasks cannot deadlock. */
async function lockTasks(tx: DbClient, userId: string, ids: string[]): Promise<void> {
  await tx.$queryRaw`
    SELECT id FROM tasks
    WHERE user_id = ${userId} AND id IN (SELECT value::uuid FROM jsonb_array_elements_text(${JSON.stringify(ids)}::jsonb))
    ORDER BY id
    FOR UPDATE`;
}

/** The tasks something other than the turn changed after the turn first changed them. */
async function changedSince(tx: DbClient, userId: string, turnId: string, changes: Change[]): Promise<string[]> {
  const since = JSON.stringify(changes.map((change) => ({ task_id: change.taskId, first_seq: change.firstSeq.toString() })));
  const rows = await tx.$queryRaw<{ taskId: string }[]>`
    SELECT DISTINCT e.task_id::text AS "taskId"
    FROM jsonb_to_recordset(${since}::jsonb) AS c(task_id uuid, first_seq bigint)
    JOIN task_events e ON e.user_id = ${userId} AND e.task_id = c.task_id AND e.seq > c.first_seq
    WHERE e.turn_id IS DISTINCT FROM ${turnId}::uuid`;
  return rows.map((row) => row.taskId);
}

/**
 * The latest turn of the conversation, other than `exceptTurnId`, that changed
 * tasks and is not undone: what the assistant's undo_turn undoes by default.
 * An undo is a change too, so undoing again restores.
 */
export async function latestUndoableTurn(db: DbClient, userId: string, conversationId: string, exceptTurnId: string): Promise<string | null> {
  const [row] = await db.$queryRaw<{ id: string }[]>`
    SELECT t.id::text FROM turns t
    WHERE t.user_id = ${userId} AND t.conversation_id = ${conversationId}::uuid AND t.id <> ${exceptTurnId}::uuid
      AND t.undone_at IS NULL
      AND EXISTS (SELECT 1 FROM task_events e WHERE e.turn_id = t.id AND e.user_id = ${userId})
    ORDER BY t.started_at DESC
    LIMIT 1`;
  return row?.id ?? null;
}
