import { getConversation } from "../domain/conversations.js";
import { parseId } from "../lib/ids.js";
import { untilExpiry } from "../realtime/expiry.js";
import { valueOrEnd } from "../realtime/subscriber.js";
import { builder } from "./builder.js";
import { TurnRef } from "./turn.js";

builder.subscriptionField("turnUpdated", (t) =>
  t.field({
    type: TurnRef,
    description:
      "The conversation's turns as they change, whichever server runs them: when one starts (RUNNING), pauses for approval (REQUIRES_ACTION), resumes, ends, is asked to stop, or gets a decision on one of its held calls. Each event is the turn as committed.",
    args: { conversationId: t.arg.id({ required: true }) },
    subscribe: async (_root, args, ctx) => {
      const userId = ctx.viewer.userId;
      const conversationId = parseId(args.conversationId, "conversationId", "Conversation");
      await getConversation(ctx.db, userId, conversationId, { select: { id: true } });
      return untilExpiry(ctx.turns.follow(userId, conversationId), ctx.viewer.expiresAt);
    },
    resolve: valueOrEnd,
  }),
);
