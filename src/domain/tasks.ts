import type { DbClient } from "../db/client.js";
import { badInput, notFound } from "../lib/errors.js";
import { Prisma, type Task } from "../generated/prisma/client.js";
import { Bounds, optionalText, requiredText } from "./bounds.js";
import { causeFrom, type Cause } from "./provenance.js";

/** Every function takes the caller's userId; a row of another user is NOT_FOUND, never FORBIDDEN. */

export type { TaskStatus } from "./task-query.js";

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

export async function getTask(db: DbClient, userId: string, id: string, query: TaskQuery = {}) {
  const task = await db.task.findFirst({ ...query, where: { id, userId } });
  if (!task) throw notFound("Task");
  return task;
}

/** A task row as `RETURNING ${TASK_COLUMNS}` gives it: snake_case columns, which Prisma's model names in camelCase. */
export type TaskRow = Record<string, unknown>;

/**
 * The model's columns, for RETURNING and SELECT: every field of the Task model
 * (so a column added to the model comes along), and not `tasks.*`, which has
 * search_vector too, a tsvector the driver adapter cannot read.
 */
export const TASK_COLUMNS = Prisma.raw(
  Object.values(Prisma.TaskScalarFieldEnum)
    .map((field) => `tasks.${field.replace(/[A-Z]/g, (letter) => `_${letter.toLowerCase()}`)}`)
    .join(", "),
);

/** The row in the model's shape, for every column there is (a column added later comes along). */
export function taskFromRow(row: TaskRow | undefined): Task {
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
    RETURNING ${TASK_COLUMNS}`;
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
    RETURNING ${TASK_COLUMNS}`;
  return taskFromRow(rows[0]);
}

/** Deletes the task and returns it as it was. */
export async function deleteTask(db: DbClient, userId: string, id: string, cause: Cause): Promise<Task> {
  const rows = await db.$queryRaw<TaskRow[]>`
    DELETE FROM tasks USING ${causeFrom(cause)}
    WHERE tasks.id = ${id}::uuid AND tasks.user_id = ${userId}
    RETURNING ${TASK_COLUMNS}`;
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
