import { addTask, deleteTask, getTask, updateTask } from "../domain/tasks.js";
import { listTaskPage } from "../domain/task-list.js";
import { checkTaskFilter } from "../domain/task-query.js";
import { USER_CAUSE } from "../domain/provenance.js";
import { badInput } from "../lib/errors.js";
import { builder } from "./builder.js";
import { parseId } from "../lib/ids.js";
import { TaskFilterInput, TaskOrderInput, TaskStatusFilter, taskOrderOf } from "./task-filter.js";

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
  }),
});

const AddTaskInput = builder.inputType("AddTaskInput", {
  fields: (t) => ({
    title: t.string({ required: true, description: "1–200 characters; surrounding whitespace is trimmed." }),
    description: t.string({ description: "At most 1000 characters. Empty means none." }),
  }),
});

const UpdateTaskInput = builder.inputType("UpdateTaskInput", {
  description: "Omitted fields stay as they are; `description: null` clears the description.",
  fields: (t) => ({
    id: t.id({ required: true }),
    title: t.string(),
    description: t.string(),
    completed: t.boolean(),
  }),
});

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
      resolve: (_root, args, ctx) => {
        const filterStatus = args.filter?.status ?? null;
        const status = args.status ?? "ALL";
        if (filterStatus !== null && status !== "ALL" && filterStatus !== status)
          throw badInput("status", "contradicts filter.status; give one of them");
        const filter = checkTaskFilter({ ...args.filter, status: filterStatus ?? status }, "filter");
        return listTaskPage(ctx.db, ctx.viewer.userId, filter, taskOrderOf(args.orderBy), args);
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
    description: "Marks the task completed. Completing a completed task is a no-op.",
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
