import { parseArguments, findTool } from "../chat/tools.js";
import { storedToolCalls, toolDocument } from "../chat/history.js";
import type { DbClient } from "../db/client.js";
import type { Message, Task } from "../generated/prisma/client.js";
import { builder } from "./builder.js";
import { toolResultKey } from "./loaders.js";
import { TaskRef } from "./task.js";
import { ToolApprovalRef } from "./tool-approval.js";

export interface ToolCallShape {
  id: string;
  name: string;
  arguments: unknown;
  result: unknown;
  error: string | null;
  /** Where the call was made: its approval is looked up by the call's id there. */
  conversationId: string;
}

/**
 * The raw ids of the tasks a call would touch, as its tool reads its
 * arguments: those it names, or (a bulk call by filter) those the filter
 * matches now; none when its arguments are invalid.
 */
async function touchedTaskIds(call: ToolCallShape, context: { db: DbClient; userId: string }): Promise<string[]> {
  const tool = findTool(call.name);
  const parsed = tool?.input.safeParse(call.arguments);
  if (!tool || !parsed?.success) return [];
  if (tool.tasksToTouch) return tool.tasksToTouch(context, parsed.data);
  return tool.targetsOf?.(parsed.data)?.taskIds ?? [];
}

export const ToolCallRef = builder.objectRef<ToolCallShape>("ToolCall").implement({
  description: "A tool the assistant called, with what it was given and what came back.",
  fields: (t) => ({
    id: t.exposeString("id"),
    name: t.exposeString("name"),
    arguments: t.field({
      type: "JSON",
      description: "The arguments the model sent; a string when they were not valid JSON.",
      resolve: (call) => call.arguments,
    }),
    result: t.field({ type: "JSON", nullable: true, resolve: (call) => call.result ?? null }),
    error: t.exposeString("error", { nullable: true }),
    approval: t.field({
      type: ToolApprovalRef,
      nullable: true,
      description: "Set when CHAT_APPROVAL held the call for the user's decision; null for calls that needed none.",
      resolve: (call, _args, ctx) => ctx.toolApprovals.load(toolResultKey(call.conversationId, call.id)),
    }),
    tasks: t.field({
      type: [TaskRef],
      description:
        "The viewer's tasks this call names (its task_id or task_ids), as they are now, or for a bulk call by filter the tasks the filter matches now (none when more match than the call may change): what an approval card shows. A task that no longer exists is left out.",
      resolve: async (call, _args, ctx) => {
        const tasks = await ctx.tasks.loadMany(await touchedTaskIds(call, { db: ctx.db, userId: ctx.viewer.userId }));
        return tasks.filter((task): task is Task => task !== null && !(task instanceof Error));
      },
    }),
  }),
});

/** Pairs an assistant message's calls with their tool messages (undefined: no result stored). */
export function toolCallsOf(
  message: Pick<Message, "toolCalls" | "conversationId">,
  results: readonly (Message | null | undefined)[],
): ToolCallShape[] {
  return storedToolCalls(message).map((call, index) => {
    const parsed = parseArguments(call.function.arguments);
    const resultMessage = results[index];
    const document = resultMessage ? toolDocument(resultMessage) : undefined;
    const error = document && typeof document.error === "string" ? document.error : null;
    return {
      id: call.id,
      name: call.function.name,
      arguments: parsed.ok ? parsed.value : call.function.arguments,
      result: error === null ? (document ?? null) : null,
      error,
      conversationId: message.conversationId,
    };
  });
}

/** Every tool call among `messages` (a turn's), in order, each with its result from the same list. */
export function toolCallsOfMessages(messages: readonly Message[]): ToolCallShape[] {
  const results = new Map(messages.filter((m) => m.role === "tool").map((m) => [m.toolCallId, m]));
  return messages.flatMap((message) =>
    toolCallsOf(
      message,
      storedToolCalls(message).map((call) => results.get(call.id)),
    ),
  );
}
