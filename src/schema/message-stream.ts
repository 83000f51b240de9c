import { getConversation } from "../domain/conversations.js";
import { parseId } from "../lib/ids.js";
import { untilExpiry } from "../realtime/expiry.js";
import { valueOrEnd } from "../realtime/subscriber.js";
import type { MessageStreamEvent } from "../realtime/stream-feed.js";
import { builder } from "./builder.js";
import { MessageRef } from "./message.js";

const MessageStreamEventRef = builder.objectRef<MessageStreamEvent>("MessageStreamEvent").implement({
  description:
    "A piece of an assistant answer as it is written. For each message, offsets run end to end: the next event's offset is this one's plus the length of its delta.",
  fields: (t) => ({
    message: t.field({
      type: MessageRef,
      description: "The answer being written: STREAMING until its last event, which carries its final status.",
      resolve: (event) => event.message,
    }),
    offset: t.exposeInt("offset", { description: "Where delta starts in message.content, in characters (code points)." }),
    delta: t.exposeString("delta", { description: "The text added since the previous event; possibly empty on the last." }),
  }),
});

builder.subscriptionField("messageStream", (t) =>
  t.field({
    type: MessageStreamEventRef,
    description:
      "The conversation's assistant answers as they are written, whichever server runs the turn. Joining while an answer streams first gives everything so far (offset 0), then the rest.",
    args: { conversationId: t.arg.id({ required: true }) },
    subscribe: async (_root, args, ctx) => {
      const userId = ctx.viewer.userId;
      const conversationId = parseId(args.conversationId, "conversationId", "Conversation");
      await getConversation(ctx.db, userId, conversationId, { select: { id: true } });
      return untilExpiry(ctx.streams.follow(userId, conversationId), ctx.viewer.expiresAt);
    },
    resolve: valueOrEnd,
  }),
);
