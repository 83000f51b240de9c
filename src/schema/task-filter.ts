import { DEFAULT_TASK_ORDER, taskOrder, type OrderDirection, type TaskOrder, type TaskOrderField } from "../domain/task-order.js";
import { TASK_PRIORITIES, type TaskStatus } from "../domain/task-query.js";
import { builder } from "./builder.js";

/** The inputs of `tasks(filter:, orderBy:)`: one filter for GraphQL, the assistant's tools and MCP (domain/task-query.ts). */

export const TaskStatusFilter = builder.enumType("TaskStatusFilter", {
  values: ["ALL", "PENDING", "COMPLETED"] as const satisfies readonly TaskStatus[],
});

/** Declared in ascending order, as the database orders it. */
export const TaskPriorityEnum = builder.enumType("TaskPriority", {
  description: "In ascending order: ordering by priority puts NONE first and URGENT last.",
  values: TASK_PRIORITIES,
});

export const TaskFilterInput = builder.inputType("TaskFilter", {
  description: "Every condition given must hold. Omitted or null conditions do not filter.",
  fields: (t) => ({
    status: t.field({ type: TaskStatusFilter }),
    search: t.string({
      description:
        'Full-text search of title and description (at most 200 characters): words match their stems ("dentists" finds "dentist"), the last word also as a prefix ("dent"), titles also with small typos. Web-search syntax: "a phrase", or, -word.',
    }),
    dueBefore: t.field({ type: "DateTime", description: "Due strictly before this instant." }),
    dueAfter: t.field({ type: "DateTime", description: "Due at or after this instant." }),
    overdue: t.boolean({
      description: "true: pending and due before now (an all-day task once its day has ended in the viewer's time zone); false: all others.",
    }),
    priority: t.field({ type: [TaskPriorityEnum], description: "Any of these priorities." }),
    labels: t.stringList({ description: "All of these labels (case-insensitive), at most 20." }),
  }),
});

const TaskOrderFieldEnum = builder.enumType("TaskOrderField", {
  values: ["CREATED_AT", "DUE_AT", "PRIORITY", "UPDATED_AT"] as const satisfies readonly TaskOrderField[],
});

const OrderDirectionEnum = builder.enumType("OrderDirection", { values: ["ASC", "DESC"] as const satisfies readonly OrderDirection[] });

export const TaskOrderInput = builder.inputType("TaskOrder", {
  description: "Ties are broken by the task's id, so pages never overlap. Tasks without a due date come last under DUE_AT in both directions.",
  fields: (t) => ({
    field: t.field({ type: TaskOrderFieldEnum, required: true }),
    direction: t.field({ type: OrderDirectionEnum, description: "Default: DESC for CREATED_AT, UPDATED_AT and PRIORITY; ASC for DUE_AT." }),
  }),
});

export function taskOrderOf(input: { field: TaskOrderField; direction?: OrderDirection | null } | null | undefined): TaskOrder {
  if (!input) return DEFAULT_TASK_ORDER;
  return taskOrder(input.field, input.direction);
}
