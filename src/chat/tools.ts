import { z } from "zod";
import { Bounds, charLength } from "../domain/bounds.js";
import { DEFAULT_TASK_ORDER } from "../domain/task-order.js";
import { listTaskPage } from "../domain/task-list.js";
import { addTask, deleteTask, updateTask, type TaskFieldsInput, type TaskStatus } from "../domain/tasks.js";
import { AppError, badInput, ErrorCode } from "../lib/errors.js";
import { parseLocalTime } from "../lib/zoned-time.js";
import { parseId } from "../lib/ids.js";
import { defineTool, TaskOutput, taskOutput, type CallTargets, type ToolContext, type ToolDefinition } from "./tool-definition.js";
import { TASK_SEARCH_TOOLS } from "./task-bulk-tools.js";
import { undoTurnTool } from "./undo-tool.js";

/**
 * The one registry of tools, shared by the chat loop and the MCP server.
 * The user id is never a parameter: it comes from the authenticated caller.
 */

export type { CallTargets, ToolAnnotations, ToolContext, ToolDefinition } from "./tool-definition.js";

/** What a tool call produced: a result for the model, or an error message it can read and recover from. */
export type ToolOutcome = { ok: true; result: Record<string, unknown> } | { ok: false; error: string };

const MAX_LISTED = 50;

function boundedText(bounds: { min?: number; max: number }, what: string) {
  const min = bounds.min ?? 0;
  return z
    .string()
    .refine((value) => charLength(value.trim()) >= min, { message: `${what} must not be empty` })
    .refine((value) => charLength(value.trim()) <= bounds.max, {
      message: `${what} must be at most ${bounds.max} characters`,
    })
    .meta({ minLength: min, maxLength: bounds.max });
}

const taskIdSchema = z.string().min(1).describe("The task's id, exactly as add_task or list_tasks returned it.");

/** The raw id of a task_id argument, or undefined when it is not a task id. */
function maybeTaskId(value: string): string | undefined {
  try {
    return parseId(value, "task_id", "Task");
  } catch {
    return undefined;
  }
}

/** targetsOf for the tools that take one task_id. */
function namedTask(input: { task_id: string }): CallTargets | undefined {
  const id = maybeTaskId(input.task_id);
  return id === undefined ? undefined : { taskIds: [id] };
}

function taskIdOf(value: string): string {
  try {
    return parseId(value, "task_id", "Task");
  } catch {
    throw new AppError("BAD_USER_INPUT", `task_id "${value}" is not a task id; use an id that add_task or list_tasks returned`);
  }
}

/** The scheduling arguments add_task and update_task share; null clears (update_task). */
const scheduleArgs = {
  due: z
    .string()
    .nullable()
    .optional()
    .describe(
      "When it is due, in the user's time zone: 2026-03-30T17:00 (local), 2026-03-30T17:00:00+02:00 (with offset), or 2026-03-30 (all day). null clears it.",
    ),
  priority: z.enum(["none", "low", "medium", "high", "urgent"]).nullable().optional().describe("How important it is; null is none."),
  labels: z
    .array(z.string())
    .nullable()
    .optional()
    .describe(
      `Labels (at most ${Bounds.taskLabels.max}, each at most ${Bounds.taskLabel.max} characters); replaces the task's labels. null removes them.`,
    ),
  recurrence: z
    .string()
    .nullable()
    .optional()
    .describe("For a repeating task: an RFC 5545 RRULE such as FREQ=WEEKLY;BYDAY=MO,TH (needs due, its first occurrence). null stops it repeating."),
};

type ScheduleArgs = {
  due?: string | null | undefined;
  priority?: string | null | undefined;
  labels?: string[] | null | undefined;
  recurrence?: string | null | undefined;
};

/** The tool's scheduling arguments as the domain takes them; `due` read in the user's zone. */
function scheduleInput(args: ScheduleArgs, zone: string): TaskFieldsInput {
  const input: TaskFieldsInput = { labels: args.labels, recurrence: args.recurrence };
  if (args.priority !== undefined) input.priority = args.priority === null ? null : (args.priority.toUpperCase() as TaskFieldsInput["priority"]);
  if (args.due === null) input.dueAt = null;
  if (typeof args.due === "string") {
    const due = parseLocalTime(args.due, zone);
    if (due === undefined)
      throw badInput("due", `"${args.due.slice(0, 40)}" is not a date (YYYY-MM-DD) or a date-time (YYYY-MM-DDTHH:MM, optionally with an offset)`);
    input.dueAt = new Date(due.epochMs);
    input.dueAllDay = due.dateOnly;
  }
  return input;
}

/** How the domain's field names read to the model, which calls the due date `due`. */
const TOOL_FIELDS = { rename: { dueAt: "due", dueAllDay: "due" } };

const addTaskTool = defineTool({
  name: "add_task",
  description: "Create a new task for the user, optionally with a due time, priority, labels and a recurrence rule.",
  input: z.object({
    title: boundedText(Bounds.taskTitle, "title").describe("Short title, 1–200 characters."),
    description: boundedText(Bounds.taskDescription, "description").optional().describe("Optional details, at most 1000 characters."),
    ...scheduleArgs,
  }),
  output: TaskOutput,
  annotations: { readOnlyHint: false, destructiveHint: false, idempotentHint: false },
  run: async ({ db, userId, cause, zone: userZone }, { title, description, ...args }) => {
    const zone = await userZone();
    return taskOutput(await addTask(db, userId, { title, description, ...scheduleInput(args, zone) }, cause, { ...TOOL_FIELDS, zone }), zone);
  },
  targetsOf: () => ({}),
});

const listTasksTool = defineTool({
  name: "list_tasks",
  description: `List the user's tasks, newest first (at most ${MAX_LISTED}).`,
  input: z.object({
    status: z.enum(["all", "pending", "completed"]).default("all").describe("Which tasks to list."),
  }),
  output: z.object({ tasks: z.array(TaskOutput), count: z.number().int(), truncated: z.boolean() }),
  annotations: { readOnlyHint: true, destructiveHint: false, idempotentHint: true },
  run: async ({ db, userId, zone: userZone }, input) => {
    const status = input.status.toUpperCase() as TaskStatus;
    // The contract says only whether more exist (truncated), not how many: one row more (LIMIT n+1), no count of every match.
    const [page, zone] = await Promise.all([listTaskPage(db, userId, { status }, DEFAULT_TASK_ORDER, { first: MAX_LISTED }), userZone()]);
    const tasks = page.edges.map(({ node }) => taskOutput(node, zone));
    return { tasks, count: tasks.length, truncated: page.pageInfo.hasNextPage };
  },
});

const completeTaskTool = defineTool({
  name: "complete_task",
  description: "Mark a task as completed. A recurring task moves on to its next occurrence instead (and stays pending) unless its rule has ended.",
  input: z.object({ task_id: taskIdSchema }),
  output: TaskOutput,
  annotations: { readOnlyHint: false, destructiveHint: false, idempotentHint: true },
  run: async ({ db, userId, cause, zone: userZone }, input) => {
    const zone = await userZone();
    return taskOutput(await updateTask(db, userId, taskIdOf(input.task_id), { completed: true }, cause, { zone }), zone);
  },
  targetsOf: namedTask,
});

const deleteTaskTool = defineTool({
  name: "delete_task",
  description: "Delete a task permanently.",
  input: z.object({ task_id: taskIdSchema }),
  output: z.object({ deleted: TaskOutput }),
  annotations: { readOnlyHint: false, destructiveHint: true, idempotentHint: false },
  run: async ({ db, userId, cause, zone }, input) => {
    const deleted = await deleteTask(db, userId, taskIdOf(input.task_id), cause);
    return { deleted: taskOutput(deleted, await zone()) };
  },
  targetsOf: namedTask,
});

const updateTaskTool = defineTool({
  name: "update_task",
  description: "Change a task's title, description, due time, priority, labels or recurrence. Omitted arguments stay as they are; null clears.",
  input: z.object({
    task_id: taskIdSchema,
    title: boundedText(Bounds.taskTitle, "title").optional().describe("New title, 1–200 characters."),
    description: boundedText(Bounds.taskDescription, "description").optional().describe("New description, at most 1000 characters; empty clears it."),
    ...scheduleArgs,
  }),
  output: TaskOutput,
  annotations: { readOnlyHint: false, destructiveHint: false, idempotentHint: true },
  run: async ({ db, userId, cause, zone: userZone }, { task_id, title, description, ...args }) => {
    const zone = await userZone();
    const task = await updateTask(db, userId, taskIdOf(task_id), { title, description, ...scheduleInput(args, zone) }, cause, {
      ...TOOL_FIELDS,
      zone,
    });
    return taskOutput(task, zone);
  },
  targetsOf: namedTask,
});

export const TOOLS: readonly ToolDefinition[] = [
  addTaskTool,
  listTasksTool,
  completeTaskTool,
  deleteTaskTool,
  updateTaskTool,
  ...TASK_SEARCH_TOOLS,
  undoTurnTool,
];

const byName = new Map(TOOLS.map((tool) => [tool.name, tool]));

export function findTool(name: string): ToolDefinition | undefined {
  return byName.get(name);
}

/** True for tools that change data; a repeated read after a write is not a loop. */
export function isWriteTool(name: string): boolean {
  return findTool(name)?.annotations.readOnlyHint !== true;
}

/** JSON Schema of a tool's input, as Cohere and MCP take it. */
export function inputJsonSchema(tool: ToolDefinition): Record<string, unknown> {
  const { $schema: _ignored, ...schema } = z.toJSONSchema(tool.input, { io: "input" }) as Record<string, unknown>;
  return schema;
}

export function outputJsonSchema(tool: ToolDefinition): Record<string, unknown> {
  const { $schema: _ignored, ...schema } = z.toJSONSchema(tool.output) as Record<string, unknown>;
  return schema;
}

function describeIssues(error: z.ZodError): string {
  return error.issues.map((issue) => (issue.path.length > 0 ? `${issue.path.join(".")}: ${issue.message}` : issue.message)).join("; ");
}

/** Parses a JSON-encoded argument string (Cohere's wire format) into an object, or explains why not. */
export function parseArguments(raw: string): { ok: true; value: unknown } | { ok: false; error: string } {
  try {
    const value: unknown = raw.trim() === "" ? {} : JSON.parse(raw);
    if (value === null || typeof value !== "object" || Array.isArray(value)) {
      return { ok: false, error: "arguments must be a JSON object" };
    }
    return { ok: true, value };
  } catch (error) {
    return { ok: false, error: `arguments are not valid JSON (${(error as Error).message})` };
  }
}

/**
 * Runs one tool call. Every failure the model could cause (unknown tool, bad
 * arguments, unknown or foreign task or turn, an undo refused) becomes an
 * error outcome it can read; only unexpected failures (the database down) throw.
 */
export async function runTool(context: ToolContext, name: string, args: unknown): Promise<ToolOutcome> {
  const tool = findTool(name);
  if (!tool) {
    return { ok: false, error: `Unknown tool "${name}". Available tools: ${TOOLS.map((t) => t.name).join(", ")}.` };
  }
  const parsed = tool.input.safeParse(args);
  if (!parsed.success) return { ok: false, error: `Invalid arguments for ${name}: ${describeIssues(parsed.error)}` };
  try {
    const result = await tool.run(context, parsed.data);
    return { ok: true, result: result as Record<string, unknown> };
  } catch (error) {
    const refusal = refusalText(error);
    if (refusal === undefined) throw error;
    return { ok: false, error: refusal };
  }
}

/** The refusals a tool answers with, as text the model can act on; undefined for anything unexpected. */
function refusalText(error: unknown): string | undefined {
  if (!(error instanceof AppError)) return undefined;
  switch (error.code) {
    case ErrorCode.NOT_FOUND:
      // Another user's row reads exactly as a row that does not exist.
      return error.message === "Turn not found"
        ? "Turn not found in this conversation. Omit turn_id to undo the latest turn that changed tasks."
        : "Task not found. List the tasks to get valid ids.";
    case ErrorCode.CONFLICT: {
      const ids = error.extensions.taskIds;
      return Array.isArray(ids) ? `${error.message}. Tasks changed since: ${ids.join(", ")}.` : error.message;
    }
    case ErrorCode.BAD_USER_INPUT:
    case ErrorCode.ALREADY_UNDONE:
    case ErrorCode.TURN_RUNNING:
      return error.message;
    default:
      return undefined;
  }
}
