import { getConversation } from "../domain/conversations.js";
import { findTaskEvent } from "../domain/task-events.js";
import { badInput } from "../lib/errors.js";
import { untilExpiry } from "../realtime/expiry.js";
import type { ConversationChangeEvent, TaskChangeEvent } from "../realtime/hub.js";
import { valueOrEnd } from "../realtime/subscriber.js";
import { builder } from "./builder.js";
import { parseId, toGlobalId } from "../lib/ids.js";
import { ConversationRef } from "./conversation.js";
import { MessageRef } from "./message.js";
import { TaskRef } from "./task.js";
import { TaskChangeKindEnum, TaskEventRef } from "./task-event.js";

const TaskChangeEventRef = builder.objectRef<TaskChangeEvent>("TaskChangeEvent").implement({
  description: "A committed change to one of the viewer's tasks, whoever made it.",
  fields: (t) => ({
    kind: t.field({ type: TaskChangeKindEnum, resolve: (event) => event.kind }),
    taskId: t.field({ type: "ID", resolve: (event) => toGlobalId("Task", event.taskId) }),
    task: t.field({
      type: TaskRef,
      nullable: true,
      description: "The task as committed; for DELETED, its last state.",
      resolve: (event) => event.task,
    }),
    cause: t.field({
      type: TaskEventRef,
      nullable: true,
      description:
        "The recorded change that made the task what `task` shows (for DELETED, the deletion), with who made it; null for a task last written before changes were recorded.",
      resolve: (event, _args, ctx) => {
        const id = event.task?.lastEventId;
        return id ? findTaskEvent(ctx.db, ctx.viewer.userId, id) : null;
      },
    }),
  }),
});

const ConversationChangeKindEnum = builder.enumType("ConversationChangeKind", {
  description:
    "CREATED: a new conversation. UPDATED: renamed, or new activity (a message settled: its `updatedAt` moved). DELETED: gone with its messages.",
  values: ["CREATED", "UPDATED", "DELETED"] as const,
});

const ConversationChangeEventRef = builder.objectRef<ConversationChangeEvent>("ConversationChangeEvent").implement({
  description: "A committed change to one of the viewer's conversations, whoever made it.",
  fields: (t) => ({
    kind: t.field({ type: ConversationChangeKindEnum, resolve: (event) => event.kind }),
    conversationId: t.field({ type: "ID", resolve: (event) => toGlobalId("Conversation", event.conversationId) }),
    conversation: t.field({
      type: ConversationRef,
      nullable: true,
      description:
        "The conversation as committed; null for DELETED (its messages and turns went with it: remove it from the list by `conversationId`).",
      resolve: (event) => event.conversation,
    }),
  }),
});

builder.subscriptionFields((t) => ({
  messageAdded: t.field({
    type: MessageRef,
    description:
      "New messages of one conversation, or of all the viewer's conversations when conversationId is omitted. With afterSeq (which needs conversationId), the persisted messages after that seq come first, then live ones: no gap, no duplicate.",
    args: {
      conversationId: t.arg.id(),
      afterSeq: t.arg.int({ description: "Replay messages with a greater seq first. 0 replays the whole conversation." }),
    },
    subscribe: async (_root, args, ctx) => {
      const userId = ctx.viewer.userId;
      const conversationId =
        args.conversationId === null || args.conversationId === undefined
          ? undefined
          : parseId(args.conversationId, "conversationId", "Conversation");
      const afterSeq = args.afterSeq ?? undefined;
      if (afterSeq !== undefined) {
        if (conversationId === undefined) throw badInput("afterSeq", "needs conversationId");
        if (afterSeq < 0) throw badInput("afterSeq", "must be 0 or more");
      }
      if (conversationId !== undefined) await getConversation(ctx.db, userId, conversationId, { select: { id: true } });
      return untilExpiry(ctx.realtime.messages(userId, { conversationId, afterSeq }), ctx.viewer.expiresAt);
    },
    resolve: valueOrEnd,
  }),
  taskChanged: t.field({
    type: TaskChangeEventRef,
    description: "Every committed change to the viewer's tasks: from the API, the assistant, MCP, another instance or SQL.",
    subscribe: (_root, _args, ctx) => untilExpiry(ctx.realtime.taskChanges(ctx.viewer.userId), ctx.viewer.expiresAt),
    resolve: valueOrEnd,
  }),
  conversationChanged: t.field({
    type: ConversationChangeEventRef,
    description:
      "Every committed change to the viewer's conversation list: created, renamed, new activity (a settled message, not each streamed flush), deleted; from the API, a chat turn, another instance or SQL.",
    subscribe: (_root, _args, ctx) => untilExpiry(ctx.realtime.conversationChanges(ctx.viewer.userId), ctx.viewer.expiresAt),
    resolve: valueOrEnd,
  }),
}));
