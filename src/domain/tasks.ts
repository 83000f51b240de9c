import type { DbClient } from "../db/client.js";
import { AppError, ErrorCode, badInput, notFound } from "../lib/errors.js";
import { Prisma, type Task } from "../generated/prisma/client.js";
import { Bounds, optionalText, requiredText } from "./bounds.js";
import { causeFrom, type Cause } from "./provenance.js";
import {
  applySchedule,
  completion,
  plainSets,
  plainValues,
  scheduleSets,
  touchesSchedule,
  type CompletionState,
  type Schedule,
  type TaskFieldsInput,
} from "./task-fields.js";
import { DEFAULT_TIMEZONE, userTimezone } from "./user-settings.js";

/** Every function takes the caller's userId; a row of another user is NOT_FOUND, never FORBIDDEN. */

export type { TaskStatus } from "./task-query.js";

/** A Prisma select/include from Pothos, so the row carries what the GraphQL query asked for. */
export type TaskQuery = { select?: Prisma.TaskSelect };

export type { TaskFieldsInput, TaskPriority } from "./task-fields.js";
export { TASK_PRIORITIES } from "./task-fields.js";

export interface AddTaskInput extends TaskFieldsInput {
  title: string;
  description?: string | null | undefined;
}

export interface UpdateTaskInput extends TaskFieldsInput {
  title?: string | null | undefined;
  description?: string | null | undefined;
  completed?: boolean | null | undefined;
}

/** `prefix` and `rename` let each entry point name fields as its client spelled them ("input.title", "title", "due"). */
export interface FieldNames {
  prefix?: string;
  rename?: Record<string, string>;
}

/**
 * How an entry point calls a write: its field names, and the user's time zone
 * when it holds it already (a chat turn or an MCP call reads it once), so the
 * write does not read user_settings again. Without `zone`, the write reads it.
 */
export interface TaskWriteOptions extends FieldNames {
  zone?: string | undefined;
}

function fieldName(names: FieldNames | undefined, field: string): string {
  const renamed = names?.rename?.[field] ?? field;
  return names?.prefix ? `${names.prefix}.${renamed}` : renamed;
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
export const TASK_COLUMNS = Prisma.raw(Object.values(Prisma.TaskScalarFieldEnum).map(columnOf).join(", "));

/** A field of the Task model (its camelCase name). */
export type TaskField = Prisma.TaskScalarFieldEnum;

export function isTaskField(name: string): name is TaskField {
  return Object.hasOwn(Prisma.TaskScalarFieldEnum, name);
}

function columnOf(field: TaskField): string {
  return `tasks.${field.replace(/[A-Z]/g, (letter) => `_${letter.toLowerCase()}`)}`;
}

/** The columns of `fields` alone, in the model's order (so a set of fields makes one SQL text, whatever order it was built in). */
export function taskColumns(fields: ReadonlySet<TaskField>): Prisma.Sql {
  const wanted = Object.values(Prisma.TaskScalarFieldEnum).filter((field) => fields.has(field));
  return Prisma.raw(wanted.map(columnOf).join(", "));
}

/** The row in the model's shape, for every column there is (a column added later comes along). */
export function taskFromRow(row: TaskRow | undefined): Task {
  if (row === undefined) throw notFound("Task");
  const task: Record<string, unknown> = {};
  for (const column in row) task[fieldOf(column)] = row[column];
  return task as Task;
}

/** snake_case column → camelCase field, each worked out once: a page of rows maps the same few names over and over (a regex per cell was 3 % of a list read's CPU). */
const FIELDS = new Map<string, string>();

function fieldOf(column: string): string {
  let field = FIELDS.get(column);
  if (field === undefined) {
    field = column.replace(/_([a-z])/g, (_match, letter: string) => letter.toUpperCase());
    // Column names come from our own SQL, but a bound keeps a stray alias from growing it.
    if (FIELDS.size < 256) FIELDS.set(column, field);
  }
  return field;
}

/*
 * The writes are raw statements so that the cause goes in the write itself
 * (provenance.ts): one statement each, whoever calls, in a transaction or not.
 */

const NO_SCHEDULE: Schedule = { dueAt: null, dueAllDay: false, recurrence: null };

export async function addTask(db: DbClient, userId: string, input: AddTaskInput, cause: Cause, options: TaskWriteOptions = {}): Promise<Task> {
  const name = (field: string) => fieldName(options, field);
  const title = requiredText(name("title"), input.title, Bounds.taskTitle);
  const description = optionalText(name("description"), input.description ?? null, Bounds.taskDescription);
  const { priority = "NONE", labels = [] } = plainValues(input, name);
  const schedule = touchesSchedule(input) ? applySchedule(NO_SCHEDULE, input, options.zone ?? (await userTimezone(db, userId)), name) : NO_SCHEDULE;
  const rows = await db.$queryRaw<TaskRow[]>`
    INSERT INTO tasks (user_id, title, description, priority, labels, due_at, due_all_day, recurrence)
    SELECT ${userId}, ${title}, ${description}, ${priority}::task_priority, ${labels}::text[], ${schedule.dueAt}::timestamptz, ${schedule.dueAllDay}, ${schedule.recurrence}
    FROM ${causeFrom(cause)}
    RETURNING ${TASK_COLUMNS}`;
  return taskFromRow(rows[0]);
}

/** The SET list items for title, description; each checked. */
function textSets(input: UpdateTaskInput, names: FieldNames | undefined): Prisma.Sql[] {
  const sets: Prisma.Sql[] = [];
  if (input.title !== undefined) {
    if (input.title === null) throw notNullable(names, "title");
    sets.push(Prisma.sql`title = ${requiredText(fieldName(names, "title"), input.title, Bounds.taskTitle)}`);
  }
  if (input.description !== undefined) {
    sets.push(Prisma.sql`description = ${optionalText(fieldName(names, "description"), input.description, Bounds.taskDescription)}`);
  }
  return sets;
}

/** The task's schedule and completion as they are now, and the user's zone: what a schedule change or a completion is checked against. */
interface CurrentState extends CompletionState {
  completedAt: Date | null;
  zone: string;
}

async function currentState(db: DbClient, userId: string, id: string, zone: string | undefined): Promise<CurrentState> {
  // The zone is read from user_settings only when the caller does not hold it already.
  const zoneColumn =
    zone === undefined
      ? Prisma.sql`, COALESCE((SELECT s.timezone FROM user_settings s WHERE s.user_id = t.user_id), ${DEFAULT_TIMEZONE}) AS zone`
      : Prisma.empty;
  const [row] = await db.$queryRaw<CurrentState[]>`
    SELECT t.completed, t.due_at AS "dueAt", t.due_all_day AS "dueAllDay", t.recurrence, t.completed_at AS "completedAt" ${zoneColumn}
    FROM tasks t
    WHERE t.id = ${id}::uuid AND t.user_id = ${userId}`;
  if (!row) throw notFound("Task");
  return { ...row, zone: zone ?? row.zone };
}

/** The SET items the schedule and completion parts of `input` make on a task now in `current`. */
function stateSets(current: CurrentState, input: UpdateTaskInput, names: FieldNames | undefined): Prisma.Sql[] {
  const name = (field: string) => fieldName(names, field);
  const schedule = touchesSchedule(input) ? applySchedule(current, input, current.zone, name) : current;
  const done =
    input.completed === undefined || input.completed === null ? undefined : completion({ ...current, ...schedule }, input.completed, current.zone);
  const scheduled = touchesSchedule(input) || done?.advanced === true ? scheduleSets(done?.schedule ?? schedule) : [];
  return [...scheduled, ...(done?.sets ?? [])];
}

/**
 * An update that changes nothing leaves the row (and its updated_at) as it
 * was and records no event. One that changes the schedule or completion is
 * checked against the row as read, and written only if the row is still so
 * (a conditional update): two completions of a recurring task racing each
 * other move it on once; the later one finds it completed meanwhile and
 * answers the task as it now is.
 */
export async function updateTask(
  db: DbClient,
  userId: string,
  id: string,
  input: UpdateTaskInput,
  cause: Cause,
  options: TaskWriteOptions = {},
): Promise<Task> {
  if (input.completed === null) throw notNullable(options, "completed");
  const sets = [...textSets(input, options), ...plainSets(input, (field) => fieldName(options, field))];
  if (!touchesSchedule(input) && input.completed === undefined) {
    if (sets.length === 0) return getTask(db, userId, id);
    return taskFromRow((await writeUpdate(db, userId, id, sets, cause))[0]);
  }
  for (let attempt = 1; attempt <= 3; attempt += 1) {
    const current = await currentState(db, userId, id, options.zone);
    const all = [...sets, ...stateSets(current, input, options)];
    if (all.length === 0) return getTask(db, userId, id);
    const [row] = await writeUpdate(db, userId, id, all, cause, current);
    if (row !== undefined) return taskFromRow(row);
    const now = await currentState(db, userId, id, options.zone);
    // Completed by someone else since it was read: this completion is that one.
    if (input.completed === true && now.completedAt?.getTime() !== current.completedAt?.getTime()) return getTask(db, userId, id);
  }
  throw new AppError(ErrorCode.CONFLICT, "The task kept changing while it was being updated; nothing was changed. Try again.");
}

/** One UPDATE, with the cause; with `expected`, only if the task's schedule and completion are still those. */
function writeUpdate(db: DbClient, userId: string, id: string, sets: Prisma.Sql[], cause: Cause, expected?: CompletionState) {
  const unchanged = expected
    ? Prisma.sql`AND tasks.completed = ${expected.completed} AND tasks.due_at IS NOT DISTINCT FROM ${expected.dueAt}::timestamptz
        AND tasks.due_all_day = ${expected.dueAllDay} AND tasks.recurrence IS NOT DISTINCT FROM ${expected.recurrence}`
    : Prisma.empty;
  return db.$queryRaw<TaskRow[]>`
    UPDATE tasks SET ${Prisma.join(sets, ", ")} FROM ${causeFrom(cause)}
    WHERE tasks.id = ${id}::uuid AND tasks.user_id = ${userId} ${unchanged}
    RETURNING ${TASK_COLUMNS}`;
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
