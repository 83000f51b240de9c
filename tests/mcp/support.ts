import type { Client } from "@modelcontextprotocol/sdk/client/index.js";
import type { CallToolResult, Tool } from "@modelcontextprotocol/sdk/types.js";
import { AjvJsonSchemaValidator } from "@modelcontextprotocol/sdk/validation/ajv";
import { expect } from "vitest";
import type { QueuedSubscription } from "../helpers/ws-client.js";

/** Shared checks of the MCP tests (HTTP and stdio). */

export const TOOL_NAMES = [
  "add_task",
  "list_tasks",
  "complete_task",
  "delete_task",
  "update_task",
  "search_tasks",
  "complete_tasks",
  "delete_tasks",
  "undo_turn",
] as const;

export const TASK_CHANGED = /* GraphQL */ `
  subscription {
    taskChanged {
      kind
      taskId
      task {
        id
        title
        description
        completed
      }
    }
  }
`;

export interface McpTask {
  id: string;
  title: string;
  description: string | null;
  completed: boolean;
  created_at: string;
  due: string | null;
  priority: string;
  labels: string[];
  completed_at: string | null;
  recurrence: string | null;
}

export interface TaskChange {
  kind: "CREATED" | "UPDATED" | "DELETED";
  taskId: string;
  task: { id: string; title: string; description: string | null; completed: boolean } | null;
}

const validator = new AjvJsonSchemaValidator();

/**
 * Asserts what tools/list must say about the task tools and undo_turn: their input
 * schemas, output schemas and annotations, and that no tool takes a user id.
 */
export function expectToolCatalogue(tools: Tool[]): void {
  expect(tools.map((tool) => tool.name)).toEqual([...TOOL_NAMES]);
  const byName = new Map(tools.map((tool) => [tool.name, tool]));
  const tool = (name: (typeof TOOL_NAMES)[number]): Tool => {
    const found = byName.get(name);
    if (!found) throw new Error(`tools/list has no ${name}`);
    return found;
  };

  for (const each of tools) {
    expect(each.description, each.name).toEqual(expect.any(String));
    expect(each.inputSchema.type, each.name).toBe("object");
    expect(each.outputSchema?.type, each.name).toBe("object");
    // The user is the token's subject, never an argument.
    for (const property of Object.keys(each.inputSchema.properties ?? {})) {
      expect(property, `${each.name}.${property}`).not.toMatch(/user|owner|^sub(ject)?$/i);
    }
  }

  const addTask = tool("add_task");
  expect(addTask.inputSchema.required).toEqual(["title"]);
  expect(addTask.inputSchema.properties).toMatchObject({
    title: { type: "string", minLength: 1, maxLength: 200 },
    description: { type: "string", maxLength: 1000 },
  });
  for (const name of ["complete_task", "delete_task", "update_task"] as const) {
    expect(tool(name).inputSchema.required, name).toEqual(["task_id"]);
    expect(tool(name).inputSchema.properties, name).toMatchObject({ task_id: { type: "string" } });
  }
  expect(Object.keys(tool("update_task").inputSchema.properties ?? {}).sort()).toEqual([
    "description",
    "due",
    "labels",
    "priority",
    "recurrence",
    "task_id",
    "title",
  ]);
  expect(tool("list_tasks").inputSchema.required ?? []).toEqual([]);
  expect(tool("list_tasks").inputSchema.properties).toMatchObject({
    status: { type: "string", enum: ["all", "pending", "completed"] },
  });

  const taskFields = ["completed", "completed_at", "created_at", "description", "due", "id", "labels", "priority", "recurrence", "title"];
  for (const name of ["add_task", "complete_task", "update_task"] as const) {
    expect(Object.keys(tool(name).outputSchema?.properties ?? {}).sort(), name).toEqual(taskFields);
    expect([...(tool(name).outputSchema?.required ?? [])].sort(), name).toEqual(taskFields);
  }
  expect(tool("list_tasks").outputSchema?.required).toEqual(["tasks", "count", "truncated"]);
  expect(tool("delete_task").outputSchema?.required).toEqual(["deleted"]);

  expect(tool("list_tasks").annotations).toMatchObject({ readOnlyHint: true, idempotentHint: true });
  expect(tool("delete_task").annotations).toMatchObject({ destructiveHint: true });
  for (const name of ["complete_task", "update_task", "list_tasks"] as const) {
    expect(tool(name).annotations?.idempotentHint, name).toBe(true);
  }
  for (const name of ["add_task", "delete_task"] as const) {
    expect(tool(name).annotations?.idempotentHint, name).not.toBe(true);
  }
  for (const name of ["add_task", "complete_task", "delete_task", "update_task"] as const) {
    expect(tool(name).annotations?.readOnlyHint, name).not.toBe(true);
  }
  for (const name of ["add_task", "complete_task", "update_task", "list_tasks"] as const) {
    expect(tool(name).annotations?.destructiveHint, name).not.toBe(true);
  }
  expect(tool("search_tasks").annotations).toMatchObject({ readOnlyHint: true, idempotentHint: true });
  expect(tool("search_tasks").outputSchema?.required).toEqual(["tasks", "total_matched", "more_matched"]);
  expect(tool("complete_tasks").annotations).toMatchObject({ readOnlyHint: false, destructiveHint: false });
  expect(tool("delete_tasks").annotations).toMatchObject({ readOnlyHint: false, destructiveHint: true });
  for (const name of ["complete_tasks", "delete_tasks"] as const) {
    expect(Object.keys(tool(name).inputSchema.properties ?? {}).sort(), name).toEqual(["filter", "task_ids"]);
    expect(tool(name).inputSchema.properties, name).toMatchObject({ task_ids: { type: "array", maxItems: 50 } });
  }
  // undo_turn deletes what a turn created: destructive, and not idempotent (a second call is refused).
  expect(Object.keys(tool("undo_turn").inputSchema.properties ?? {})).toEqual(["turn_id"]);
  expect(tool("undo_turn").inputSchema.required ?? []).toEqual([]);
  expect(tool("undo_turn").annotations).toMatchObject({ readOnlyHint: false, destructiveHint: true, idempotentHint: false });
  expect(tool("undo_turn").outputSchema?.required).toEqual(["undone_turn_id", "undo_turn_id", "reverted", "tasks"]);
}

/**
 * Calls a tool that must succeed: the structured result validates against the
 * tool's advertised output schema and the text content is the same JSON.
 */
export async function callOk<T = Record<string, unknown>>(client: Client, tools: Tool[], name: string, args: Record<string, unknown>): Promise<T> {
  const result = (await client.callTool({ name, arguments: args })) as CallToolResult;
  expect(result.isError, `${name}: ${JSON.stringify(result.content)}`).toBeFalsy();
  const schema = tools.find((tool) => tool.name === name)?.outputSchema;
  if (!schema) throw new Error(`${name} has no output schema`);
  const validation = validator.getValidator(schema)(result.structuredContent);
  expect(validation.errorMessage, name).toBeUndefined();
  expect(validation.valid, name).toBe(true);
  expect(result.content).toHaveLength(1);
  const [content] = result.content;
  expect(content?.type).toBe("text");
  expect(JSON.parse(content?.type === "text" ? content.text : "null")).toEqual(result.structuredContent);
  return result.structuredContent as T;
}

/** Calls a tool that must fail as a tool error (isError, not a protocol error); returns its message. */
export async function callError(client: Client, name: string, args: Record<string, unknown>): Promise<string> {
  const result = (await client.callTool({ name, arguments: args })) as CallToolResult;
  expect(result.isError, `${name} should fail: ${JSON.stringify(result)}`).toBe(true);
  expect(result.structuredContent).toBeUndefined();
  expect(result.content).toHaveLength(1);
  const [content] = result.content;
  if (content?.type !== "text") throw new Error(`${name}: the error is not text: ${JSON.stringify(content)}`);
  return content.text;
}

/** The next taskChanged event; fails on an error result. */
export async function nextChange(sub: QueuedSubscription): Promise<TaskChange> {
  const result = await sub.next();
  if (result.errors) throw new Error(`taskChanged errored: ${JSON.stringify(result.errors)}`);
  return result.data?.taskChanged as TaskChange;
}

/** Asserts that the next taskChanged event is exactly `kind` for `task`, carrying the task in that state. */
export async function expectNextChange(sub: QueuedSubscription, kind: TaskChange["kind"], task: NonNullable<TaskChange["task"]>): Promise<void> {
  expect(await nextChange(sub)).toEqual({ kind, taskId: task.id, task });
}
