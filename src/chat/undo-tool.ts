import { z } from "zod";
import { userTimezone } from "../domain/user-settings.js";
import { latestUndoableTurn, undoTurn, type UndoOutcome, type UndoRequest } from "../domain/undo.js";
import { AppError, ErrorCode } from "../lib/errors.js";
import { parseId, toGlobalId } from "../lib/ids.js";
import { defineTool, TaskOutput, taskOutput, type ToolContext } from "./tool-definition.js";

/**
 * undo_turn: the assistant (or an MCP client) takes back what a turn did to
 * the tasks, with the same rules and refusals as the undoTurn mutation. In a
 * chat, only a turn of the same conversation, never the one calling; the
 * undo's writes are recorded as UNDO of that turn, asked for by this turn and
 * call, so undoing this turn later restores the changes again.
 */

const RevertedOutput = z.object({
  task_id: z.string(),
  kind: z.enum(["CREATED", "UPDATED", "DELETED"]).describe("What the undo did to the task: CREATED brought it back, DELETED removed it."),
});

const UndoOutput = z.object({
  undone_turn_id: z.string(),
  undo_turn_id: z.string().nullable().describe("The turn that made this undo: undo it to restore the changes."),
  reverted: z.array(RevertedOutput),
  tasks: z.array(TaskOutput).describe("The tasks the undo wrote, as they are now."),
});

function turnIdOf(value: string): string {
  try {
    return parseId(value, "turn_id", "Turn");
  } catch {
    throw new AppError(ErrorCode.BAD_USER_INPUT, `turn_id "${value}" is not a turn id`);
  }
}

/** The turn to undo: the one named, or (in a chat) the latest other turn of the conversation that changed tasks. */
async function targetOf(context: ToolContext, turnId: string | undefined): Promise<string> {
  if (turnId !== undefined) return turnIdOf(turnId);
  if (!context.turn) throw new AppError(ErrorCode.BAD_USER_INPUT, "turn_id is required outside a conversation");
  const latest = await latestUndoableTurn(context.db, context.userId, context.turn.conversationId, context.turn.id);
  if (latest === null)
    throw new AppError(ErrorCode.BAD_USER_INPUT, "No earlier turn of this conversation changed tasks, so there is nothing to undo");
  return latest;
}

function undoOutput(context: ToolContext, outcome: UndoOutcome, zone: string): z.infer<typeof UndoOutput> {
  return {
    undone_turn_id: toGlobalId("Turn", outcome.turn.id),
    undo_turn_id: context.turn ? toGlobalId("Turn", context.turn.id) : null,
    reverted: outcome.reverted.map((event) => ({ task_id: toGlobalId("Task", event.taskId), kind: event.kind })),
    tasks: outcome.tasks.map((task) => taskOutput(task, zone)),
  };
}

export const undoTurnTool = defineTool({
  name: "undo_turn",
  description:
    "Undo every task change an earlier turn of this conversation made (by default the latest one that changed tasks; an undo counts, so undoing again restores). Refused, changing nothing, if one of those tasks was changed again since.",
  input: z.object({
    turn_id: z.string().min(1).optional().describe("The turn to undo, as undo_turn returned it; omit it for the latest turn that changed tasks."),
  }),
  output: UndoOutput,
  annotations: { readOnlyHint: false, destructiveHint: true, idempotentHint: false },
  // Held for approval under CHAT_APPROVAL=destructive (destructiveHint): only when the named turn is the user's.
  targetsOf: (input) => {
    if (input.turn_id === undefined) return {};
    try {
      return { turnIds: [parseId(input.turn_id, "turn_id", "Turn")] };
    } catch {
      return undefined;
    }
  },
  run: async (context, input) => {
    const turnId = await targetOf(context, input.turn_id);
    const request: UndoRequest = { userId: context.userId, turnId, conversationId: context.turn?.conversationId };
    if (context.cause.actor === "ASSISTANT") request.requestedBy = { turnId: context.cause.turnId, toolCallId: context.cause.toolCallId };
    const outcome = await context.atomically((tx) => undoTurn(tx, request));
    return undoOutput(context, outcome, await userTimezone(context.db, context.userId));
  },
});
