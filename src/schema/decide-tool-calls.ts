import { parseId } from "../lib/ids.js";
import { builder } from "./builder.js";
import { TurnRef } from "./turn.js";

const ToolCallDecision = builder.inputType("ToolCallDecision", {
  description: "The user's decision on one held tool call of a turn.",
  fields: (t) => ({
    toolCallId: t.string({ required: true, description: "ToolCall.id of a call whose approval is PENDING." }),
    approve: t.boolean({
      required: true,
      description: "true runs the call (ownership and existence are checked again then); false tells the model the user declined.",
    }),
    reason: t.string({ description: "With a rejection: why, at most 1000 characters; the model reads it." }),
    argumentsHash: t.string({
      description: "ToolApproval.argumentsHash as it was shown: when given and the call's differs, the decision is STALE_DECISION.",
    }),
  }),
});

builder.mutationField("decideToolCalls", (t) =>
  t.field({
    type: TurnRef,
    description:
      "Approves or rejects held tool calls of a turn waiting for the user (REQUIRES_ACTION), one or several at a time, in any order, on any server. All or nothing: a decision on a call already decided the other way, expired, or of a cancelled turn is STALE_DECISION and nothing changes; the same decision again changes nothing. An unknown toolCallId is BAD_USER_INPUT; another user's turn is NOT_FOUND. The last decision resumes the turn on this server: approved calls run, rejected ones reach the model with the reason. Answers with the turn (RUNNING once resumed); follow it with turnUpdated.",
    args: {
      turnId: t.arg.id({ required: true }),
      decisions: t.arg({ type: [ToolCallDecision], required: true }),
    },
    resolve: (_root, args, ctx) => ctx.assistant.decideToolCalls(ctx.viewer.userId, parseId(args.turnId, "turnId", "Turn"), args.decisions),
  }),
);
