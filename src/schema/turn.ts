import { turnMessages } from "../domain/conversation-log.js";
import { parseId } from "../lib/ids.js";
import { builder } from "./builder.js";
import { MessageRef } from "./message.js";
import { ToolCallRef, toolCallsOfMessages } from "./tool-call.js";

export const TurnStatusEnum = builder.enumType("TurnStatus", {
  description:
    "RUNNING until the turn ends: COMPLETED (it answered, or a bound stopped it: see stopCode), CANCELLED, or FAILED (retry with the clientMessageId to resume). REQUIRES_ACTION: it waits for the user to approve or reject tool calls (toolCalls with approval PENDING; decideToolCalls), and resumes once all are decided.",
  values: ["RUNNING", "REQUIRES_ACTION", "COMPLETED", "CANCELLED", "FAILED"] as const,
});

interface TokenUsageShape {
  inputTokens: number;
  outputTokens: number;
}

const TokenUsageRef = builder.objectRef<TokenUsageShape>("TokenUsage").implement({
  description: "Tokens the model billed, summed over a turn's model calls.",
  fields: (t) => ({
    inputTokens: t.exposeInt("inputTokens"),
    outputTokens: t.exposeInt("outputTokens"),
  }),
});

export const TurnRef = builder.prismaNode("Turn", {
  id: { field: "id" },
  description: "What became of one user message: the assistant's steps, tool calls and answer, and how it ended.",
  findUnique: (id, ctx) => ({ id, userId: ctx.viewer.userId }),
  fields: (t) => ({
    status: t.expose("status", { type: TurnStatusEnum }),
    stopCode: t.exposeString("stopCode", {
      nullable: true,
      description:
        "The error code that ended the turn, when a bound, a failure or a cancel did: ASSISTANT_STEP_LIMIT, ASSISTANT_TIMEOUT, ASSISTANT_REPEATED_TOOL_CALL, ASSISTANT_TOO_MANY_TOOL_CALLS (none of that step's calls ran), ASSISTANT_ANSWER_TOO_LONG (the reply was cut, with a marker), APPROVAL_EXPIRED (held calls were not decided in time; none ran), ASSISTANT_UNAVAILABLE, CANCELLED, or INTERRUPTED when its server went away.",
    }),
    conversation: t.relation("conversation"),
    userMessage: t.relation("userMessage"),
    messages: t.field({
      type: [MessageRef],
      description: "Everything this turn persisted, in seq order, its user message first.",
      select: { userMessage: { select: { conversationId: true, seq: true } } },
      resolve: (turn, _args, ctx) => turnMessages(ctx.db, turn.userMessage),
    }),
    toolCalls: t.field({
      type: [ToolCallRef],
      description: "Every tool call of this turn, in order, with its result or error and, when it was held for the user, its approval.",
      select: { userMessage: { select: { conversationId: true, seq: true } } },
      resolve: async (turn, _args, ctx) => toolCallsOfMessages(await turnMessages(ctx.db, turn.userMessage)),
    }),
    usage: t.field({
      type: TokenUsageRef,
      nullable: true,
      description: "Billed tokens summed over the turn's model calls; null before the first call ends.",
      select: { inputTokens: true, outputTokens: true },
      resolve: (turn) =>
        turn.inputTokens === null && turn.outputTokens === null ? null : { inputTokens: turn.inputTokens ?? 0, outputTokens: turn.outputTokens ?? 0 },
    }),
    startedAt: t.expose("startedAt", { type: "DateTime" }),
    finishedAt: t.expose("finishedAt", { type: "DateTime", nullable: true }),
    undoneAt: t.expose("undoneAt", {
      type: "DateTime",
      nullable: true,
      description: "When undoTurn (or the assistant's undo_turn) reverted this turn's task changes; null if it was not undone.",
    }),
  }),
});

builder.prismaObjectField("Conversation", "activeTurn", (t) =>
  t.field({
    type: TurnRef,
    nullable: true,
    description: "The turn in progress in this conversation: RUNNING, or REQUIRES_ACTION while it waits for the user's approval; null when none is.",
    select: { id: true },
    resolve: (conversation, _args, ctx) => ctx.assistant.activeTurn(ctx.viewer.userId, conversation.id),
  }),
);

builder.mutationField("cancelTurn", (t) =>
  t.field({
    type: TurnRef,
    description:
      "Stops a RUNNING turn, on whichever server runs it: the model call is aborted, no further tool call starts, the answer so far is kept as CANCELLED. A turn waiting for approval (REQUIRES_ACTION) ends CANCELLED at once, none of its held calls run, and deciding them is then STALE_DECISION. Answers once the turn has ended. An ended turn is returned unchanged.",
    args: { id: t.arg.id({ required: true }) },
    resolve: (_root, args, ctx) => ctx.assistant.cancelTurn(ctx.viewer.userId, parseId(args.id, "id", "Turn")),
  }),
);
