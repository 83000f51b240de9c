import { Prisma } from "../generated/prisma/client.js";
import { badInput } from "../lib/errors.js";
import { startOfLocalDay } from "../lib/zoned-time.js";
import { Bounds, normalizeLabels } from "./bounds.js";
import { nextOccurrence, normalizeRecurrence, occurrencesAfter } from "./recurrence.js";

/**
 * The scheduling fields of a task (due date, priority, labels, recurrence)
 * and completion: validated once here for every entry point. For the fields
 * that cannot be null in the database, null means "back to the default"
 * (no priority, no labels, not all day), so null clears everything.
 */

export const TASK_PRIORITIES = ["NONE", "LOW", "MEDIUM", "HIGH", "URGENT"] as const;
export type TaskPriority = (typeof TASK_PRIORITIES)[number];

export interface TaskFieldsInput {
  dueAt?: Date | null | undefined;
  dueAllDay?: boolean | null | undefined;
  priority?: TaskPriority | null | undefined;
  labels?: readonly string[] | null | undefined;
  recurrence?: string | null | undefined;
}

/** What decides a task's schedule: what it is (or would be), and the zone its rule and day are in. */
export interface Schedule {
  dueAt: Date | null;
  dueAllDay: boolean;
  recurrence: string | null;
}

export type FieldName = (field: string) => string;

/** Whether the input touches the fields that need the current row and the user's zone to check. */
export function touchesSchedule(input: TaskFieldsInput): boolean {
  return input.dueAt !== undefined || input.dueAllDay !== undefined || input.recurrence !== undefined;
}

/** The schedule after `input` is applied to `current`, checked as a whole. */
export function applySchedule(current: Schedule, input: TaskFieldsInput, zone: string, name: FieldName): Schedule {
  const recurrence =
    input.recurrence === undefined
      ? current.recurrence
      : input.recurrence === null
        ? null
        : normalizeRecurrence(name("recurrence"), input.recurrence);
  let dueAt = input.dueAt === undefined ? current.dueAt : input.dueAt;
  if (dueAt !== null && Number.isNaN(dueAt.getTime())) throw badInput(name("dueAt"), "is not a valid date-time");
  let dueAllDay = input.dueAllDay === undefined ? current.dueAllDay : input.dueAllDay === true;
  if (dueAt === null) {
    if (input.dueAllDay === true) throw badInput(name("dueAllDay"), "needs a dueAt (the day the task is due)");
    dueAllDay = false;
  }
  // An all-day task is due on a day: kept as that day's start in the user's zone.
  if (dueAt !== null && dueAllDay) dueAt = new Date(startOfLocalDay(dueAt.getTime(), zone));
  if (recurrence !== null) {
    if (dueAt === null) {
      throw input.dueAt === null && current.recurrence !== null && input.recurrence === undefined
        ? badInput(name("dueAt"), "cannot be cleared while the task recurs: clear recurrence too")
        : badInput(name("recurrence"), "needs a dueAt: a recurring task repeats from its due date");
    }
    // Refuses a rule that never occurs again (it would make every completion final by surprise).
    if (recurrence !== current.recurrence || dueAt.getTime() !== current.dueAt?.getTime()) {
      occurrencesAfter(recurrence, dueAt, zone, 1, name("recurrence"));
    }
  }
  return { dueAt, dueAllDay, recurrence };
}

/** The SET list items for a schedule, in SQL. */
export function scheduleSets(schedule: Schedule): Prisma.Sql[] {
  return [
    Prisma.sql`due_at = ${schedule.dueAt}::timestamptz`,
    Prisma.sql`due_all_day = ${schedule.dueAllDay}`,
    Prisma.sql`recurrence = ${schedule.recurrence}`,
  ];
}

export function priorityOf(value: TaskPriority | null, field: string): TaskPriority {
  if (value === null) return "NONE";
  if (!TASK_PRIORITIES.includes(value)) throw badInput(field, `must be one of ${TASK_PRIORITIES.join(", ")}`);
  return value;
}

/** Priority and labels checked; absent ones stay absent, null is the default. */
export function plainValues(input: TaskFieldsInput, name: FieldName): { priority?: TaskPriority; labels?: string[] } {
  return {
    ...(input.priority === undefined ? {} : { priority: priorityOf(input.priority, name("priority")) }),
    ...(input.labels === undefined ? {} : { labels: input.labels === null ? [] : normalizeLabels(name("labels"), input.labels) }),
  };
}

/** SET list items for priority and labels, the fields any update may carry without reading the row. */
export function plainSets(input: TaskFieldsInput, name: FieldName): Prisma.Sql[] {
  const values = plainValues(input, name);
  const sets: Prisma.Sql[] = [];
  if (values.priority !== undefined) sets.push(Prisma.sql`priority = ${values.priority}::task_priority`);
  if (values.labels !== undefined) sets.push(Prisma.sql`labels = ${values.labels}::text[]`);
  return sets;
}

/** The state completion looks at. */
export interface CompletionState extends Schedule {
  completed: boolean;
}

/** What a change of `completed` does: the SET items for completed/completedAt, and the schedule after it. */
export interface Completion {
  sets: Prisma.Sql[];
  schedule: Schedule;
  /** A recurring task moved on to its next occurrence (dueAt and, with COUNT, the rule changed). */
  advanced: boolean;
}

/**
 * `completed` set on a task in `state` (its state after the rest of the
 * update). Completing a recurring task moves it to its next occurrence
 * (recording completedAt, staying pending) unless its rule has none left;
 * reopening a task clears completedAt; completing a completed task, or
 * reopening an open one, changes nothing.
 */
export function completion(state: CompletionState, completed: boolean, zone: string): Completion {
  const schedule: Schedule = { dueAt: state.dueAt, dueAllDay: state.dueAllDay, recurrence: state.recurrence };
  if (!completed) {
    return { sets: state.completed ? [Prisma.sql`completed = false`, Prisma.sql`completed_at = NULL`] : [], schedule, advanced: false };
  }
  if (state.completed) return { sets: [], schedule, advanced: false };
  const next = state.recurrence !== null && state.dueAt !== null ? nextOccurrence(state.recurrence, state.dueAt, zone) : null;
  if (next === null) return { sets: [Prisma.sql`completed = true`, Prisma.sql`completed_at = now()`], schedule, advanced: false };
  return { sets: [Prisma.sql`completed_at = now()`], schedule: { ...schedule, dueAt: next.dueAt, recurrence: next.rule }, advanced: true };
}

/** Task.nextOccurrences: where completing the task would move it, and on from there; none when it does not recur or is done. */
export function upcomingOccurrences(task: Schedule & { completed: boolean }, zone: string, first: number, field = "first"): Date[] {
  if (!Number.isInteger(first) || first < Bounds.nextOccurrences.min || first > Bounds.nextOccurrences.max) {
    throw badInput(field, `must be between ${Bounds.nextOccurrences.min} and ${Bounds.nextOccurrences.max}`);
  }
  if (task.completed || task.recurrence === null || task.dueAt === null) return [];
  const count = /(^|;)COUNT=(\d+)/.exec(task.recurrence);
  // COUNT counts the current occurrence (dueAt) too.
  const limit = count === null ? first : Math.min(first, Number(count[2]) - 1);
  return occurrencesAfter(task.recurrence, task.dueAt, zone, limit);
}
