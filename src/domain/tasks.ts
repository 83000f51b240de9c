import type { DbClient } from "../db/client.js";
import { badInput, notFound } from "../lib/errors.js";
import { Prisma, type Task } from "../generated/prisma/client.js";
import { Bounds, optionalText, requiredText } from "./bounds.js";
import { causeFrom, type Cause } from "./provenance.js";

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

/** A task row as `RETURNING tasks.*` gives it: snake_case columns, which Prisma's model names in camelCase. */
type TaskRow = Record<string, unknown>;

/** The row in the model's shape, for every column there is (a column added later comes along). */
function taskFromRow(row: TaskRow | undefined): Task {
  if (row === undefined) throw notFound("Task");
  const task: Record<string, unknown> = {};
  for (const [column, value] of Object.entries(row)) {
    task[column.replace(/_([a-z])/g, (_match, letter: string) => letter.toUpperCase())] = value;
  }
  return task as Task;
}

/*
 * The writes are raw statements so that the cause goes in the write itself
 * (provenance.ts): one statement each, whoever calls, in a transaction or not.
 */

export async function addTask(db: DbClient, userId: string, input: AddTaskInput, cause: Cause, names?: FieldNames): Promise<Task> {
  const title = requiredText(fieldName(names, "title"), input.title, Bounds.taskTitle);
  const description = optionalText(fieldName(names, "description"), input.description ?? null, Bounds.taskDescription);
  const rows = await db.$queryRaw<TaskRow[]>`
    INSERT INTO tasks (user_id, title, description)
    SELECT ${userId}, ${title}, ${description} FROM ${causeFrom(cause)}
    RETURNING tasks.*`;
  return taskFromRow(rows[0]);
}

/** The SET list of an update; empty when the input changes nothing. */
function assignments(input: UpdateTaskInput, names: FieldNames | undefined): Prisma.Sql[] {
  const sets: Prisma.Sql[] = [];
  if (input.title !== undefined) {
    if (input.title === null) throw notNullable(names, "title");
    sets.push(Prisma.sql`title = ${requiredText(fieldName(names, "title"), input.title, Bounds.taskTitle)}`);
  }
  if (input.description !== undefined) {
    sets.push(Prisma.sql`description = ${optionalText(fieldName(names, "description"), input.description, Bounds.taskDescription)}`);
  }
  if (input.completed !== undefined) {
    if (input.completed === null) throw notNullable(names, "completed");
    sets.push(Prisma.sql`completed = ${input.completed}`);
  }
  return sets;
}

/** An update that changes nothing leaves the row (and its updated_at) as it was and records no event. */
export async function updateTask(db: DbClient, userId: string, id: string, input: UpdateTaskInput, cause: Cause, names?: FieldNames): Promise<Task> {
  const sets = assignments(input, names);
  if (sets.length === 0) return getTask(db, userId, id);
  const rows = await db.$queryRaw<TaskRow[]>`
    UPDATE tasks SET ${Prisma.join(sets, ", ")} FROM ${causeFrom(cause)}
    WHERE tasks.id = ${id}::uuid AND tasks.user_id = ${userId}
    RETURNING tasks.*`;
  return taskFromRow(rows[0]);
}

/** Deletes the task and returns it as it was. */
export async function deleteTask(db: DbClient, userId: string, id: string, cause: Cause): Promise<Task> {
  const rows = await db.$queryRaw<TaskRow[]>`
    DELETE FROM tasks USING ${causeFrom(cause)}
    WHERE tasks.id = ${id}::uuid AND tasks.user_id = ${userId}
    RETURNING tasks.*`;
  return taskFromRow(rows[0]);
}

function notNullable(names: FieldNames | undefined, field: string) {
  return badInput(fieldName(names, field), "must not be null (omit it to leave it unchanged)");
}

/** The user's tasks among `ids` (raw ids), in no particular order; another user's or a missing one is left out. */
export function findOwnedTasks(db: DbClient, userId: string, ids: readonly string[]) {
  if (ids.length === 0) return Promise.resolve([]);
  return db.task.findMany({ where: { userId, id: { in: [...new Set(ids)] } } });
}
