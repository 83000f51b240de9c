import { Prisma, type TaskPriority } from "../generated/prisma/client.js";
import { badInput } from "../lib/errors.js";
import { Bounds, charLength, requireStorable } from "./bounds.js";
import { taskSearchCondition } from "./task-search.js";

/**
 * Which of a user's tasks a list, a search or a bulk tool call is about: the
 * one filter of GraphQL's `tasks(filter:)`, the assistant's search_tasks and
 * complete_tasks/delete_tasks, and MCP. Every condition is a bound parameter
 * in a Prisma.sql template; nothing a client sent is ever spliced into SQL.
 */

export type TaskStatus = "ALL" | "PENDING" | "COMPLETED";

export { TASK_PRIORITIES } from "./task-fields.js";

export interface TaskFilter {
  status?: TaskStatus | null | undefined;
  /** Full-text over title and description; the last word also matches as a prefix. Blank: no search. */
  search?: string | null | undefined;
  /** Due strictly before this instant. */
  dueBefore?: Date | null | undefined;
  /** Due at or after this instant (with dueBefore, a half-open range). */
  dueAfter?: Date | null | undefined;
  /** true: pending and past due (an all-day task once its day has ended in the user's zone); false: the others. */
  overdue?: boolean | null | undefined;
  /** Any of these priorities. */
  priority?: readonly TaskPriority[] | null | undefined;
  /** All of these labels, compared case-insensitively. */
  labels?: readonly string[] | null | undefined;
}

/** The filter's own bounds: what a client may ask in one filter. */
export const FilterBounds = {
  search: { max: 200 },
  // A filter names at most the labels a task can carry, each as long as a task's label may be.
  labels: Bounds.taskLabels,
  label: Bounds.taskLabel,
} as const;

/** `prefix` names fields as the client spelled them ("filter.search", "search"). */
function named(prefix: string | undefined, field: string): string {
  return prefix ? `${prefix}.${field}` : field;
}

/** The filter checked and normalised (blank search and empty lists dropped); BAD_USER_INPUT names the field. */
export function checkTaskFilter(filter: TaskFilter, prefix?: string): TaskFilter {
  const checked: TaskFilter = { ...filter };
  if (typeof filter.search === "string") {
    const field = named(prefix, "search");
    requireStorable(field, filter.search);
    const search = filter.search.trim();
    const length = charLength(search);
    if (length > FilterBounds.search.max) throw badInput(field, `must be at most ${FilterBounds.search.max} characters (got ${length})`);
    checked.search = search === "" ? null : search;
  }
  if (filter.labels) checked.labels = checkLabels(filter.labels, named(prefix, "labels"));
  for (const key of ["dueBefore", "dueAfter"] as const) {
    const value = filter[key];
    if (value && Number.isNaN(value.getTime())) throw badInput(named(prefix, key), "must be a valid date and time");
  }
  return checked;
}

function checkLabels(labels: readonly string[], field: string): string[] {
  if (labels.length > FilterBounds.labels.max) throw badInput(field, `must have at most ${FilterBounds.labels.max} labels (got ${labels.length})`);
  return labels.map((label, index) => {
    requireStorable(`${field}[${index}]`, label);
    const trimmed = label.trim();
    const length = charLength(trimmed);
    if (length === 0) throw badInput(`${field}[${index}]`, "must not be empty");
    if (length > FilterBounds.label.max) throw badInput(`${field}[${index}]`, `must be at most ${FilterBounds.label.max} characters (got ${length})`);
    return trimmed;
  });
}

/**
 * Pending and past due, by the database's clock. The first two conditions
 * are what tasks_user_id_completed_due_at_idx answers; an all-day task
 * (due_at: the start of its day in the user's zone) is overdue only once that
 * day has ended there, a day being 23 to 25 hours across a DST change.
 */
const OVERDUE = Prisma.sql`(tasks.completed = false AND tasks.due_at < now() AND (NOT tasks.due_all_day OR
  ((tasks.due_at AT TIME ZONE zone.name) + interval '1 day') AT TIME ZONE zone.name <= now()))`;

/** The user's time zone, as a one-row FROM item the overdue condition reads (UTC without settings). */
export function userZoneFrom(userId: string): Prisma.Sql {
  return Prisma.sql`(SELECT coalesce((SELECT timezone FROM user_settings WHERE user_id = ${userId}), 'UTC') AS name) AS zone`;
}

/** The WHERE conditions of a (checked) filter for the user's tasks; the query must have userZoneFrom in its FROM. */
export function taskFilterSql(userId: string, filter: TaskFilter): Prisma.Sql {
  const conditions: Prisma.Sql[] = [Prisma.sql`tasks.user_id = ${userId}`];
  if (filter.status === "PENDING") conditions.push(Prisma.sql`tasks.completed = false`);
  if (filter.status === "COMPLETED") conditions.push(Prisma.sql`tasks.completed = true`);
  if (filter.search) conditions.push(taskSearchCondition(filter.search));
  if (filter.dueBefore) conditions.push(Prisma.sql`tasks.due_at < ${filter.dueBefore}`);
  if (filter.dueAfter) conditions.push(Prisma.sql`tasks.due_at >= ${filter.dueAfter}`);
  if (filter.overdue === true) conditions.push(OVERDUE);
  // coalesce: a task without a due date is not overdue (the comparison alone is NULL).
  if (filter.overdue === false) conditions.push(Prisma.sql`NOT coalesce(${OVERDUE}, false)`);
  if (filter.priority && filter.priority.length > 0) {
    conditions.push(Prisma.sql`tasks.priority::text = ANY(${[...new Set(filter.priority)]}::text[])`);
  }
  if (filter.labels && filter.labels.length > 0) {
    // Every label asked for is among the task's, both sides lower-cased by Postgres alike.
    conditions.push(Prisma.sql`NOT EXISTS (SELECT 1 FROM unnest(${[...filter.labels]}::text[]) AS wanted(label)
      WHERE NOT EXISTS (SELECT 1 FROM unnest(tasks.labels) AS has(label) WHERE lower(has.label) = lower(wanted.label)))`);
  }
  return Prisma.join(conditions, " AND ");
}
