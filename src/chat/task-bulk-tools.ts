import { z } from "zod";
import type { DbClient } from "../db/client.js";
import { matchingTaskIds, searchTasks } from "../domain/task-list.js";
import { checkTaskFilter } from "../domain/task-query.js";
import { deleteTask, findOwnedTasks, updateTask } from "../domain/tasks.js";
import { AppError, ErrorCode, notFound } from "../lib/errors.js";
import { parseId } from "../lib/ids.js";
import { defineTool, TaskOutput, taskOutput, type CallTargets, type ToolContext } from "./tool-definition.js";
import { hasCondition, TaskFilterToolInput, taskFilterOf, taskFilterShape, taskOrderOfTool, taskOrderShape } from "./task-filter-tool-input.js";

/**
 * search_tasks, and the bulk forms complete_tasks and delete_tasks. What
 * reaches the model is bounded: at most MAX_FOUND tasks and the count of the
 * rest. A bulk call changes at most MAX_BULK tasks, all or none, each write
 * through the same domain function (and so the same rules) as the one-task
 * tools, carrying the call's cause: undoing the turn reverts them all.
 */

export const MAX_FOUND = 25;
export const MAX_BULK = 50;

const searchTasksTool = defineTool({
  name: "search_tasks",
  description: `Find the user's tasks by words, due date, priority, labels or status (at most ${MAX_FOUND} listed; the result says how many more matched). Use it to find the task the user means ("the dentist one") before changing it.`,
  input: z.object({
    ...taskFilterShape,
    ...taskOrderShape,
    limit: z.number().int().min(1).max(MAX_FOUND).default(10).describe(`How many tasks to list, 1–${MAX_FOUND}.`),
  }),
  output: z.object({
    tasks: z.array(TaskOutput),
    total_matched: z.number().int().describe("How many tasks match in all."),
    more_matched: z.number().int().describe("How many matching tasks are not listed: narrow the search to see them."),
  }),
  annotations: { readOnlyHint: true, destructiveHint: false, idempotentHint: true },
  run: async ({ db, userId, zone: userZone }, input) => {
    const filter = checkTaskFilter(taskFilterOf(input));
    const [{ tasks, total }, zone] = await Promise.all([searchTasks(db, userId, filter, taskOrderOfTool(input), input.limit), userZone()]);
    return { tasks: tasks.map((task) => taskOutput(task, zone)), total_matched: total, more_matched: Math.max(0, total - tasks.length) };
  },
});

/** A bulk call names its tasks or a filter: exactly one of them. */
const BulkInput = z
  .object({
    task_ids: z
      .array(z.string().min(1))
      .min(1)
      .max(MAX_BULK)
      .optional()
      .describe(`The tasks, by the ids search_tasks or list_tasks returned (at most ${MAX_BULK}).`),
    filter: TaskFilterToolInput.optional().describe(`Instead of task_ids: every task matching this filter (refused if more than ${MAX_BULK} match).`),
  })
  .refine((input) => (input.task_ids === undefined) !== (input.filter === undefined), { message: "give either task_ids or filter, not both" })
  .refine((input) => input.filter === undefined || hasCondition(input.filter), {
    message: "filter must have at least one condition",
    path: ["filter"],
  });
type BulkInput = z.infer<typeof BulkInput>;

function maybeTaskId(value: string): string | undefined {
  try {
    return parseId(value, "task_ids", "Task");
  } catch {
    return undefined;
  }
}

/** The raw ids of task_ids; undefined when one is not a task id (the call cannot run). */
function namedIds(input: BulkInput): string[] | undefined {
  const ids = (input.task_ids ?? []).map(maybeTaskId);
  return ids.every((id): id is string => id !== undefined) ? [...new Set(ids)] : undefined;
}

function bulkTargets(input: BulkInput): CallTargets | undefined {
  const ids = namedIds(input);
  return ids === undefined ? undefined : { taskIds: ids };
}

/**
 * The tasks a bulk call would change if it ran now, as raw ids: the named
 * ones that are the user's, or what the filter matches (none when more than
 * MAX_BULK match: the call would be refused). What an approval card and MCP's
 * question show.
 */
async function bulkTasksToTouch(context: { db: DbClient; userId: string }, input: BulkInput): Promise<string[]> {
  if (input.filter === undefined) {
    const owned = await findOwnedTasks(context.db, context.userId, namedIds(input) ?? []);
    return owned.map((task) => task.id);
  }
  const { ids, total } = await matchingTaskIds(context.db, context.userId, checkTaskFilter(taskFilterOf(input.filter), "filter"), MAX_BULK);
  return total > MAX_BULK ? [] : ids;
}

/**
 * The ids the call changes, checked in its transaction: every named task must
 * be the user's (another user's id reads as one that does not exist, and the
 * call changes nothing), and a filter must match at most MAX_BULK.
 */
async function resolveBulk(tx: DbClient, userId: string, input: BulkInput): Promise<string[]> {
  if (input.filter !== undefined) {
    const filter = checkTaskFilter(taskFilterOf(input.filter), "filter");
    const { ids, total } = await matchingTaskIds(tx, userId, filter, MAX_BULK);
    if (total > MAX_BULK) {
      throw new AppError(ErrorCode.BAD_USER_INPUT, `The filter matches ${total} tasks; at most ${MAX_BULK} per call. Narrow it, or work in batches.`);
    }
    return ids;
  }
  const ids = namedIds(input);
  if (ids === undefined) throw new AppError(ErrorCode.BAD_USER_INPUT, "task_ids: one of them is not a task id; use ids that search_tasks returned");
  const owned = await findOwnedTasks(tx, userId, ids);
  if (owned.length !== ids.length) throw notFound("Task");
  return ids;
}

/** `write` gets the turn's zone, so a completion does not read it again for each task. */
async function runBulk(
  context: ToolContext,
  input: BulkInput,
  write: (tx: DbClient, id: string, zone: string) => Promise<Parameters<typeof taskOutput>[0]>,
) {
  return context.atomically(async (tx) => {
    const ids = await resolveBulk(tx, context.userId, input);
    const zone = await context.zone();
    const tasks = [];
    for (const id of ids) tasks.push(taskOutput(await write(tx, id, zone), zone));
    return { tasks, count: tasks.length };
  });
}

const BulkOutput = z.object({ tasks: z.array(TaskOutput), count: z.number().int() });

const completeTasksTool = defineTool({
  name: "complete_tasks",
  description: `Mark several tasks completed at once: by task_ids, or every task matching a filter (at most ${MAX_BULK}; all or none). The user is asked first.`,
  input: BulkInput,
  output: BulkOutput.describe("The tasks as they are now."),
  annotations: { readOnlyHint: false, destructiveHint: false, idempotentHint: true },
  changesManyTasks: () => true,
  targetsOf: bulkTargets,
  tasksToTouch: bulkTasksToTouch,
  run: (context, input) =>
    runBulk(context, input, (tx, id, zone) => updateTask(tx, context.userId, id, { completed: true }, context.cause, { zone })),
});

const deleteTasksTool = defineTool({
  name: "delete_tasks",
  description: `Delete several tasks at once: by task_ids, or every task matching a filter (at most ${MAX_BULK}; all or none). The user is asked first.`,
  input: BulkInput,
  output: BulkOutput.describe("The tasks as they were."),
  annotations: { readOnlyHint: false, destructiveHint: true, idempotentHint: false },
  changesManyTasks: () => true,
  targetsOf: bulkTargets,
  tasksToTouch: bulkTasksToTouch,
  run: (context, input) => runBulk(context, input, (tx, id) => deleteTask(tx, context.userId, id, context.cause)),
});

export const TASK_SEARCH_TOOLS = [searchTasksTool, completeTasksTool, deleteTasksTool] as const;
