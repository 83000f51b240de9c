import type { DbClient } from "../db/client.js";
import type { Prisma, TaskEvent } from "../generated/prisma/client.js";
import { notFound } from "../lib/errors.js";

/**
 * Reading task_events, always under the user's scope. The rows are written by
 * the tasks triggers only (see provenance.ts); nothing here writes them.
 */

/** Newest first: seq is the order a task's changes committed in. */
export const TASK_EVENT_ORDER: Prisma.TaskEventOrderByWithRelationInput[] = [{ seq: "desc" }];

/** What Pothos asks of a connection's page: the selection, and where the page starts. */
export type TaskEventPageQuery = Omit<Prisma.TaskEventFindManyArgs, "where" | "orderBy">;

/**
 * One page of a task's history, newest first. The cursor is looked up with the
 * user and the task in the filter (as listTaskPage does), so an event id of
 * another user's, or of another task, is an unknown cursor: an empty page.
 */
export function taskHistoryPage(db: DbClient, userId: string, taskId: string, query: TaskEventPageQuery) {
  const cursor = query.cursor === undefined ? undefined : { ...query.cursor, userId, taskId };
  return db.taskEvent.findMany({ ...query, cursor, where: { userId, taskId }, orderBy: TASK_EVENT_ORDER });
}

export async function getTaskEvent(db: DbClient, userId: string, id: string, query: { select?: Prisma.TaskEventSelect } = {}) {
  const event = await db.taskEvent.findFirst({ ...query, where: { id, userId } });
  if (!event) throw notFound("TaskEvent");
  return event;
}

/**
 * One event by id, or null: another user's is null too. findUnique, so that
 * Prisma batches the lookups of one tick (every taskChanged cause of a burst)
 * into one query; the owner is checked here.
 */
export async function findTaskEvent(db: DbClient, userId: string, id: string): Promise<TaskEvent | null> {
  const event = await db.taskEvent.findUnique({ where: { id } });
  return event?.userId === userId ? event : null;
}

/** The task changes a turn made (its tool calls, or the undo it asked for), in the order they were made. */
export function eventsOfTurn(db: DbClient, userId: string, turnId: string): Promise<TaskEvent[]> {
  return db.taskEvent.findMany({ where: { userId, turnId }, orderBy: { seq: "asc" } });
}
