import type { DbClient } from "../db/client.js";
import { badInput, notFound } from "../lib/errors.js";
import type { Prisma } from "../generated/prisma/client.js";
import { Bounds, optionalText, requiredText } from "./bounds.js";
import { isRecordNotFound } from "./prisma-errors.js";

/** Every function takes the caller's userId; a row of another user is NOT_FOUND, never FORBIDDEN. */

export type TaskStatus = "ALL" | "PENDING" | "COMPLETED";

/** A Prisma select/include from Pothos, so the row carries what the GraphQL query asked for. */
export type TaskQuery = { select?: Prisma.TaskSelect };

export interface AddTaskInput {
  title: string;
  description?: string | null | undefined;
}

export interface UpdateTaskInput {
  title?: string | null | undefined;
  description?: string | null | undefined;
  completed?: boolean | null | undefined;
}

/** `prefix` lets each entry point name fields as its client spelled them ("input.title", "title"). */
export interface FieldNames {
  prefix?: string;
}

function fieldName(names: FieldNames | undefined, field: string): string {
  return names?.prefix ? `${names.prefix}.${field}` : field;
}

export function taskWhere(userId: string, status: TaskStatus = "ALL"): Prisma.TaskWhereInput {
  if (status === "PENDING") return { userId, completed: false };
  if (status === "COMPLETED") return { userId, completed: true };
  return { userId };
}

/** Newest first, with the id as a tiebreaker so cursors are stable. */
export const TASK_ORDER: Prisma.TaskOrderByWithRelationInput[] = [{ createdAt: "desc" }, { id: "desc" }];

export async function getTask(db: DbClient, userId: string, id: string, query: TaskQuery = {}) {
  const task = await db.task.findFirst({ ...query, where: { id, userId } });
  if (!task) throw notFound("Task");
  return task;
}

/** What Pothos asks of a connection's page: the selection, and where the page starts (`cursor`, `skip`, `take`). */
export type TaskPageQuery = Omit<Prisma.TaskFindManyArgs, "where" | "orderBy">;

/**
 * One page of the user's tasks. The cursor row is looked up with the user in
 * the filter: Prisma finds a cursor by its unique id alone and pages from
 * wherever that row sits, so another user's task id as a cursor would return a
 * different page than an unknown one, revealing that the task exists and when
 * it was created. Scoped, it is an unknown cursor: an empty page.
 */
export function listTaskPage(db: DbClient, userId: string, status: TaskStatus, query: TaskPageQuery) {
  const cursor = query.cursor === undefined ? undefined : { ...query.cursor, userId };
  return db.task.findMany({ ...query, cursor, where: taskWhere(userId, status), orderBy: TASK_ORDER });
}

export async function listTasks(db: DbClient, userId: string, status: TaskStatus, limit: number) {
  return db.task.findMany({ where: taskWhere(userId, status), orderBy: TASK_ORDER, take: limit });
}

export async function addTask(db: DbClient, userId: string, input: AddTaskInput, query: TaskQuery = {}, names?: FieldNames) {
  const title = requiredText(fieldName(names, "title"), input.title, Bounds.taskTitle);
  const description = optionalText(fieldName(names, "description"), input.description ?? null, Bounds.taskDescription);
  return db.task.create({ ...query, data: { userId, title, description } });
}

export async function updateTask(
  db: DbClient,
  userId: string,
  id: string,
  input: UpdateTaskInput,
  query: TaskQuery = {},
  names?: FieldNames,
) {
  const data: Prisma.TaskUpdateInput = {};
  if (input.title !== undefined) {
    if (input.title === null) throw notNullable(names, "title");
    data.title = requiredText(fieldName(names, "title"), input.title, Bounds.taskTitle);
  }
  if (input.description !== undefined) {
    data.description = optionalText(fieldName(names, "description"), input.description, Bounds.taskDescription);
  }
  if (input.completed !== undefined) {
    if (input.completed === null) throw notNullable(names, "completed");
    data.completed = input.completed;
  }
  try {
    return await db.task.update({ ...query, where: { id, userId }, data });
  } catch (error) {
    if (isRecordNotFound(error)) throw notFound("Task");
    throw error;
  }
}

export async function deleteTask(db: DbClient, userId: string, id: string, query: TaskQuery = {}) {
  try {
    return await db.task.delete({ ...query, where: { id, userId } });
  } catch (error) {
    if (isRecordNotFound(error)) throw notFound("Task");
    throw error;
  }
}

function notNullable(names: FieldNames | undefined, field: string) {
  return badInput(fieldName(names, field), "must not be null (omit it to leave it unchanged)");
}

/** The user's tasks among `ids` (raw ids), in no particular order; another user's or a missing one is left out. */
export function findOwnedTasks(db: DbClient, userId: string, ids: readonly string[]) {
  if (ids.length === 0) return Promise.resolve([]);
  return db.task.findMany({ where: { userId, id: { in: [...new Set(ids)] } } });
}
