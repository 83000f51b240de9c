import { eventsOfTurn, taskHistoryPage } from "../domain/task-events.js";
import { findTurn } from "../domain/conversation-log.js";
import type { TaskEvent } from "../generated/prisma/client.js";
import { isUuid, toGlobalId } from "../lib/ids.js";
import { builder } from "./builder.js";
import type { Context } from "./context.js";
import { TurnRef } from "./turn.js";

export const TaskChangeKindEnum = builder.enumType("TaskChangeKind", {
  values: ["CREATED", "UPDATED", "DELETED"] as const,
});

export const TaskEventActorEnum = builder.enumType("TaskEventActor", {
  description:
    "Who made a change: USER (the API or the web client), ASSISTANT (a tool call in a chat turn), MCP (an MCP tool call), UNDO (an undo of a turn), SYSTEM (a write that said nothing of its cause, e.g. SQL in psql).",
  values: ["USER", "ASSISTANT", "MCP", "UNDO", "SYSTEM"] as const,
});

/**
 * A recorded row in API terms: camelCase keys, the owner left out (it is the
 * viewer), the id as the Task's global id. Generic over the columns, so a
 * column added later shows without a change here.
 */
function presentRow(row: unknown): unknown {
  if (row === null || typeof row !== "object" || Array.isArray(row)) return row ?? null;
  const shown: Record<string, unknown> = {};
  for (const [column, value] of Object.entries(row)) {
    if (column === "user_id") continue;
    const key = column.replace(/_([a-z])/g, (_match, letter: string) => letter.toUpperCase());
    shown[key] = key === "id" && isUuid(value) ? toGlobalId("Task", value) : value;
  }
  return shown;
}

/** A turn the event names, if it is still there (its conversation may have been deleted). */
function turnOf(ctx: Context, id: string | null) {
  return id === null ? null : findTurn(ctx.db, ctx.viewer.userId, id);
}

export const TaskEventRef = builder.prismaNode("TaskEvent", {
  id: { field: "id" },
  description: "One change to a task, recorded by the database in the same transaction as the change, with its cause.",
  findUnique: (id, ctx) => ({ id, userId: ctx.viewer.userId }),
  fields: (t) => ({
    at: t.expose("at", { type: "DateTime", description: "When the change's transaction started (the database's clock)." }),
    kind: t.expose("kind", { type: TaskChangeKindEnum }),
    actor: t.expose("actor", { type: TaskEventActorEnum }),
    taskId: t.field({ type: "ID", resolve: (event) => toGlobalId("Task", event.taskId) }),
    turn: t.field({
      type: TurnRef,
      nullable: true,
      description:
        "ASSISTANT: the turn whose tool call made the change. UNDO: the turn undone. Otherwise null (also once its conversation is deleted).",
      resolve: (event, _args, ctx) => turnOf(ctx, event.actor === "UNDO" ? event.undoneTurnId : event.actor === "ASSISTANT" ? event.turnId : null),
    }),
    undoingTurn: t.field({
      type: TurnRef,
      nullable: true,
      description: "UNDO made by the assistant's undo_turn: the turn that asked for it (undo that turn to restore). Otherwise null.",
      resolve: (event, _args, ctx) => turnOf(ctx, event.actor === "UNDO" ? event.turnId : null),
    }),
    toolCallId: t.exposeString("toolCallId", {
      nullable: true,
      description: "The tool call that made the change (ASSISTANT), or that asked for the undo (UNDO by the assistant).",
    }),
    before: t.field({
      type: "JSON",
      nullable: true,
      description: "The task before the change; null for CREATED.",
      resolve: (event) => presentRow(event.before),
    }),
    after: t.field({
      type: "JSON",
      nullable: true,
      description: "The task after the change; null for DELETED.",
      resolve: (event) => presentRow(event.after),
    }),
  }),
});

builder.prismaObjectField("Task", "history", (t) =>
  t.prismaConnection(
    {
      type: "TaskEvent",
      cursor: "id",
      description: "Every recorded change to this task, newest first, whoever made it.",
      resolve: (query, task, _args, ctx) => taskHistoryPage(ctx.db, ctx.viewer.userId, task.id, query),
    },
    { name: "TaskEventConnection" },
    { name: "TaskEventEdge" },
  ),
);

builder.prismaObjectField("Turn", "taskEvents", (t) =>
  t.field({
    type: [TaskEventRef],
    description: "The task changes this turn made (its tool calls, or an undo it asked for), in the order it made them.",
    resolve: (turn, _args, ctx): Promise<TaskEvent[]> => eventsOfTurn(ctx.db, ctx.viewer.userId, turn.id),
  }),
);
