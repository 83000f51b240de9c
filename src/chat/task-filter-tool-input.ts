import { z } from "zod";
import type { TaskPriority } from "../generated/prisma/client.js";
import { FilterBounds, type TaskFilter, type TaskStatus } from "../domain/task-query.js";
import { taskOrder, type TaskOrder, type TaskOrderField } from "../domain/task-order.js";

/**
 * The task filter as the assistant's tools (and MCP) take it: the same
 * conditions as GraphQL's TaskFilter (domain/task-query.ts), snake_case.
 */

/** A bound is an instant: with an offset, and the refusal of one without says so (the user's offset is in the system message). */
const instant = (what: string) =>
  z.iso
    .datetime({ offset: true, error: "needs an offset, e.g. Z or +01:00 (an ISO 8601 date-time such as 2026-03-01T17:00:00+01:00)" })
    .optional()
    .describe(`${what}: an ISO 8601 date-time with its offset, e.g. 2026-03-01T17:00:00+01:00.`);

export const taskFilterShape = {
  query: z
    .string()
    .max(FilterBounds.search.max)
    .optional()
    .describe(
      'Words to find in the title or description ("dentist"); stems match, the last word also as a prefix. Web-search syntax: "a phrase", or, -word.',
    ),
  status: z.enum(["all", "pending", "completed"]).optional().describe("Which tasks: all (default), pending or completed."),
  due_before: instant("Only tasks due strictly before this"),
  due_after: instant("Only tasks due at or after this"),
  overdue: z.boolean().optional().describe("true: only pending tasks past their due time; false: only the others."),
  priority: z
    .array(z.enum(["none", "low", "medium", "high", "urgent"]))
    .max(5)
    .optional()
    .describe("Only tasks with one of these priorities."),
  labels: z
    .array(z.string().min(1).max(FilterBounds.label.max))
    .max(FilterBounds.labels.max)
    .optional()
    .describe("Only tasks that have all of these labels (case-insensitive)."),
};

export const TaskFilterToolInput = z.object(taskFilterShape);
export type TaskFilterToolInput = z.infer<typeof TaskFilterToolInput>;

/** Whether any condition is given: a bulk call by filter must narrow something. */
export function hasCondition(input: TaskFilterToolInput): boolean {
  return Object.values(input).some((value) => value !== undefined && !(Array.isArray(value) && value.length === 0));
}

export function taskFilterOf(input: TaskFilterToolInput): TaskFilter {
  return {
    status: (input.status?.toUpperCase() ?? "ALL") as TaskStatus,
    search: input.query ?? null,
    dueBefore: input.due_before ? new Date(input.due_before) : null,
    dueAfter: input.due_after ? new Date(input.due_after) : null,
    overdue: input.overdue ?? null,
    priority: input.priority?.map((priority) => priority.toUpperCase() as TaskPriority) ?? null,
    labels: input.labels ?? null,
  };
}

export const taskOrderShape = {
  order_by: z.enum(["created_at", "due_at", "priority", "updated_at"]).default("created_at").describe("The order of the tasks listed."),
  direction: z
    .enum(["asc", "desc"])
    .optional()
    .describe("Default: the soonest due first for due_at, otherwise the highest or newest first. Tasks without a due date come last."),
};

export function taskOrderOfTool(input: { order_by: string; direction?: "asc" | "desc" | undefined }): TaskOrder {
  return taskOrder(input.order_by.toUpperCase() as TaskOrderField, input.direction ? (input.direction.toUpperCase() as "ASC" | "DESC") : null);
}
