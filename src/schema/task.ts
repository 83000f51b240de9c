import { addTask, deleteTask, getTask, isTaskField, updateTask } from "../domain/tasks.js";
import { listTaskPage } from "../domain/task-list.js";
import { checkTaskFilter } from "../domain/task-query.js";
import { upcomingOccurrences } from "../domain/task-fields.js";
import { Bounds } from "../domain/bounds.js";
import { USER_CAUSE } from "../domain/provenance.js";
import { badInput } from "../lib/errors.js";
import { builder } from "./builder.js";
import { parseId } from "../lib/ids.js";
import { requestedFieldsOf } from "./requested-fields.js";
import { TaskFilterInput, TaskOrderInput, TaskPriorityEnum, TaskStatusFilter, taskOrderOf } from "./task-filter.js";

export const TaskRef = builder.prismaNode("Task", {
  id: { field: "id" },
  // Used by Pothos when it must refetch a Task; the owner check applies there too.
  findUnique: (id, ctx) => ({ id, userId: ctx.viewer.userId }),
  fields: (t) => ({
    title: t.exposeString("title"),
    description: t.exposeString("description", { nullable: true }),
    completed: t.exposeBoolean("completed"),
    createdAt: t.expose("createdAt", { type: "DateTime" }),
    updatedAt: t.expose("updatedAt", { type: "DateTime" }),
    dueAt: t.expose("dueAt", {
      type: "DateTime",
      nullable: true,
      description: "When the task is due. With dueAllDay, the start of the due day in the viewer's time zone.",
    }),
    dueAllDay: t.exposeBoolean("dueAllDay", { description: "Due on a day rather than at a time." }),
    priority: t.expose("priority", { type: TaskPriorityEnum }),
    labels: t.exposeStringList("labels", {
      description: `At most ${Bounds.taskLabels.max}, each 1–${Bounds.taskLabel.max} characters, unique ignoring case.`,
    }),
    completedAt: t.expose("completedAt", {
      type: "DateTime",
      nullable: true,
      description: "When the task was last completed. A recurring task that moved on to its next occurrence keeps it while pending again.",
    }),
    recurrence: t.exposeString("recurrence", {
      nullable: true,
      description: "An RFC 5545 RRULE (e.g. FREQ=WEEKLY;BYDAY=MO,TH) repeating from dueAt, in the viewer's time zone.",
    }),
    nextOccurrences: t.field({
      type: ["DateTime"],
      description: `The occurrences after dueAt: where completing the task moves it, and on from there. Empty when it does not recur (or is done). first: ${Bounds.nextOccurrences.min}–${Bounds.nextOccurrences.max}.`,
      args: { first: t.arg.int({ defaultValue: 5, required: false }) },
      resolve: async (task, args, ctx) => {
        const { timezone } = await ctx.settings.load(ctx.viewer.userId);
        return upcomingOccurrences(task, timezone, args.first ?? 5);
      },
    }),
  }),
});

const DUE_AT = "When the task is due. With dueAllDay, any instant of the due day (in the viewer's time zone): it is kept as the day's start.";
const RECURRENCE =
  "An RFC 5545 RRULE value (e.g. FREQ=WEEKLY;BYDAY=MO,TH; no DTSTART: dueAt is the start). Needs dueAt. Completing the task moves it to its next occurrence.";
const LABELS = `At most ${Bounds.taskLabels.max}, each 1–${Bounds.taskLabel.max} characters, trimmed; repeats ignoring case are dropped (the first spelling stays).`;

const AddTaskInput = builder.inputType("AddTaskInput", {
  fields: (t) => ({
    title: t.string({ required: true, description: "1–200 characters; surrounding whitespace is trimmed." }),
    description: t.string({ description: "At most 1000 characters. Empty means none." }),
    dueAt: t.field({ type: "DateTime", description: DUE_AT }),
    dueAllDay: t.boolean({ description: "Due on a day rather than at a time (needs dueAt)." }),
    priority: t.field({ type: TaskPriorityEnum, description: "NONE when omitted." }),
    labels: t.stringList({ description: LABELS }),
    recurrence: t.string({ description: RECURRENCE }),
  }),
});

const UpdateTaskInput = builder.inputType("UpdateTaskInput", {
  description:
    "Omitted fields stay as they are; null clears a field (dueAt, description, recurrence) or puts it back to its default (priority NONE, no labels, dueAllDay false). title and completed cannot be null.",
  fields: (t) => ({
    id: t.id({ required: true }),
    title: t.string(),
    description: t.string(),
    completed: t.boolean({
      description: "true on a recurring task moves it to its next occurrence (recording completedAt) unless its rule has none left.",
    }),
    dueAt: t.field({ type: "DateTime", description: DUE_AT }),
    dueAllDay: t.boolean(),
    priority: t.field({ type: TaskPriorityEnum }),
    labels: t.stringList({ description: LABELS }),
    recurrence: t.string({ description: RECURRENCE }),
  }),
});

/** What a task page's document reads from its nodes: the list then selects those columns alone. */
const pageFields = requestedFieldsOf("Task", ["edges", "node"], isTaskField);

builder.queryFields((t) => ({
  tasks: t.connection(
    {
      type: TaskRef,
      description:
        "The viewer's tasks matching `filter`, in `orderBy` (default: newest first). A cursor belongs to the order it came from: another order's is BAD_USER_INPUT. `status` is filter.status for older clients.",
      args: {
        filter: t.arg({ type: TaskFilterInput }),
        orderBy: t.arg({ type: TaskOrderInput }),
        status: t.arg({ type: TaskStatusFilter, defaultValue: "ALL", required: false }),
      },
      resolve: (_root, args, ctx, info) => {
        const filterStatus = args.filter?.status ?? null;
        const status = args.status ?? "ALL";
        if (filterStatus !== null && status !== "ALL" && filterStatus !== status)
          throw badInput("status", "contradicts filter.status; give one of them");
        const filter = checkTaskFilter({ ...args.filter, status: filterStatus ?? status }, "filter");
        return listTaskPage(ctx.db, ctx.viewer.userId, filter, taskOrderOf(args.orderBy), args, pageFields(info));
      },
    },
    { name: "TaskConnection" },
    { name: "TaskEdge" },
  ),
  task: t.prismaField({
    type: "Task",
    nullable: true,
    args: { id: t.arg.id({ required: true }) },
    resolve: (query, _root, args, ctx) => getTask(ctx.db, ctx.viewer.userId, parseId(args.id, "id", "Task"), query),
  }),
}));

// Writes answer the whole row they wrote (no Prisma selection to honour): a
// task has no relations, so the row is everything a selection can ask for.
builder.mutationFields((t) => ({
  addTask: t.field({
    type: TaskRef,
    args: { input: t.arg({ type: AddTaskInput, required: true }) },
    resolve: (_root, { input }, ctx) => addTask(ctx.db, ctx.viewer.userId, input, USER_CAUSE, { prefix: "input" }),
  }),
  updateTask: t.field({
    type: TaskRef,
    args: { input: t.arg({ type: UpdateTaskInput, required: true }) },
    resolve: (_root, { input }, ctx) =>
      updateTask(ctx.db, ctx.viewer.userId, parseId(input.id, "input.id", "Task"), input, USER_CAUSE, { prefix: "input" }),
  }),
  completeTask: t.field({
    type: TaskRef,
    description:
      "Marks the task completed; a recurring task moves to its next occurrence instead (completedAt records the completion) unless its rule has none left. Completing a completed task is a no-op.",
    args: { id: t.arg.id({ required: true }) },
    resolve: (_root, args, ctx) => updateTask(ctx.db, ctx.viewer.userId, parseId(args.id, "id", "Task"), { completed: true }, USER_CAUSE),
  }),
  deleteTask: t.field({
    type: TaskRef,
    description: "Deletes the task and returns it as it was.",
    args: { id: t.arg.id({ required: true }) },
    resolve: (_root, args, ctx) => deleteTask(ctx.db, ctx.viewer.userId, parseId(args.id, "id", "Task"), USER_CAUSE),
  }),
}));
