import { z } from "zod";
import type { DbClient } from "../db/client.js";
import type { Cause } from "../domain/provenance.js";
import { toGlobalId } from "../lib/ids.js";
import { localDate, localIso } from "../lib/zoned-time.js";

/**
 * What every tool of the registry is made of (tools.ts holds the registry).
 * The user id is never a parameter: it comes from the authenticated caller.
 */

export interface ToolContext {
  db: DbClient;
  userId: string;
  /** What the tool's task writes are recorded as: ASSISTANT with the turn and the call, or MCP. */
  cause: Cause;
  /** The chat turn calling, if a chat turn is: undo_turn stays in its conversation and never undoes this turn. */
  turn?: { id: string; conversationId: string } | undefined;
  /** Runs `work` all or nothing: a savepoint in the chat's tool-call transaction, a transaction of its own for MCP. */
  atomically<T>(work: (tx: DbClient) => Promise<T>): Promise<T>;
  /** The user's time zone, read once per turn or MCP call: the tools take and give local times in it. */
  zone(): Promise<string>;
}

export interface ToolAnnotations {
  readOnlyHint?: boolean;
  destructiveHint?: boolean;
  idempotentHint?: boolean;
}

export interface ToolDefinition<Input extends z.ZodType = z.ZodType, Output = unknown> {
  name: string;
  description: string;
  input: Input;
  output: z.ZodType<Output>;
  annotations: ToolAnnotations;
  run(context: ToolContext, input: z.infer<Input>): Promise<Output>;
  /**
   * Whether a call would change more than one task, from its validated input:
   * a bulk call, which CHAT_APPROVAL=destructive asks the user about first
   * (chat/approval-policy.ts). Unset: never.
   */
  changesManyTasks?(input: z.infer<Input>): boolean;
  /**
   * What a call names, as raw ids, from its validated input: its tasks (what
   * an approval card shows of it, by title) and its turns. A call held for
   * approval must name only the user's own: one that names anything else
   * cannot change it, and answers "not found" at once instead of asking.
   * Undefined when a named id is not an id of its kind (the call cannot run).
   */
  targetsOf?(input: z.infer<Input>): CallTargets | undefined;
  /**
   * The tasks (raw ids, the user's own) a call would change if it ran now,
   * where its arguments alone do not say (a bulk call by filter): what an
   * approval card and MCP's question name. Unset: the tasks of targetsOf.
   */
  tasksToTouch?(context: { db: DbClient; userId: string }, input: z.infer<Input>): Promise<string[]>;
}

/** The rows a call names, as raw ids. */
export interface CallTargets {
  taskIds?: string[];
  turnIds?: string[];
}

/** Keeps each tool's input type for its `run` while the registry holds them all alike. */
export function defineTool<Input extends z.ZodType, Output>(tool: ToolDefinition<Input, Output>): ToolDefinition<Input, Output> {
  return tool;
}

export const TaskOutput = z.object({
  id: z.string(),
  title: z.string(),
  description: z.string().nullable(),
  completed: z.boolean(),
  created_at: z.string(),
  due: z.string().nullable().describe("Local ISO 8601 time with offset in the user's zone, or a date (YYYY-MM-DD) for an all-day task."),
  priority: z.enum(["none", "low", "medium", "high", "urgent"]),
  labels: z.array(z.string()),
  completed_at: z.string().nullable(),
  recurrence: z.string().nullable(),
});
export type TaskOutput = z.infer<typeof TaskOutput>;

/** The task fields a tool shows. */
export interface ShownTask {
  id: string;
  title: string;
  description: string | null;
  completed: boolean;
  createdAt: Date;
  dueAt: Date | null;
  dueAllDay: boolean;
  priority: string;
  labels: string[];
  completedAt: Date | null;
  recurrence: string | null;
}

/** A task as the model sees it: times local to the user's zone, with their offsets. */
export function taskOutput(task: ShownTask, zone: string): TaskOutput {
  const local = (date: Date | null) => (date === null ? null : localIso(date.getTime(), zone));
  return {
    id: toGlobalId("Task", task.id),
    title: task.title,
    description: task.description,
    completed: task.completed,
    created_at: localIso(task.createdAt.getTime(), zone),
    due: task.dueAt === null ? null : task.dueAllDay ? localDate(task.dueAt.getTime(), zone) : localIso(task.dueAt.getTime(), zone),
    priority: task.priority.toLowerCase() as TaskOutput["priority"],
    labels: task.labels,
    completed_at: local(task.completedAt),
    recurrence: task.recurrence,
  };
}
