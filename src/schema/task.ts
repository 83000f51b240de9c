import { addTask, deleteTask, getTask, listTaskPage, updateTask, type TaskStatus } from "../domain/tasks.js";
import { USER_CAUSE } from "../domain/provenance.js";
import { builder } from "./builder.js";
import { parseId } from "../lib/ids.js";

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

export const TaskStatusFilter = builder.enumType("TaskStatusFilter", {
  values: ["ALL", "PENDING", "COMPLETED"] as const satisfies readonly TaskStatus[],
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
  tasks: t.prismaConnection(
    {
      type: "Task",
      cursor: "id",
      description: "The viewer's tasks, newest first.",
      args: { status: t.arg({ type: TaskStatusFilter, defaultValue: "ALL", required: false }) },
      resolve: (query, _root, args, ctx) => listTaskPage(ctx.db, ctx.viewer.userId, args.status ?? "ALL", query),
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
