import { storedToolCalls } from "../chat/history.js";
import { builder } from "./builder.js";
import { toolResultKey } from "./loaders.js";
import { ToolCallRef, toolCallsOf } from "./tool-call.js";

export const MessageRoleEnum = builder.enumType("MessageRole", {
  values: {
    USER: { value: "user" },
    ASSISTANT: { value: "assistant" },
    TOOL: { value: "tool" },
  } as const,
});

export const MessageStatusEnum = builder.enumType("MessageStatus", {
  description:
    "An assistant answer is STREAMING while the model writes it, then COMPLETE, CANCELLED or FAILED (keeping what it had). User and tool messages are always COMPLETE.",
  values: ["STREAMING", "COMPLETE", "CANCELLED", "FAILED"] as const,
});

export const MessageRef = builder.prismaNode("Message", {
  id: { field: "id" },
  findUnique: (id, ctx) => ({ id, userId: ctx.viewer.userId }),
  fields: (t) => ({
    role: t.expose("role", { type: MessageRoleEnum }),
    content: t.exposeString("content", { description: "While STREAMING, the text so far: it only grows." }),
    status: t.expose("status", { type: MessageStatusEnum }),
    seq: t.exposeInt("seq", { description: "1, 2, 3… within the conversation: the order the assistant saw." }),
    createdAt: t.expose("createdAt", { type: "DateTime" }),
    clientMessageId: t.exposeString("clientMessageId", {
      nullable: true,
      description:
        "On user messages sent with one: the clientMessageId. Sending the same content with it again resumes this message's turn if it FAILED (the message is not stored twice), from any client, after a reload too.",
    }),
    conversation: t.relation("conversation"),
    toolCalls: t.field({
      type: [ToolCallRef],
      description: "On assistant messages that asked for tools: each call with its result.",
      // No `select`: Message rows always carry their scalars (toolCalls, conversationId), so a row
      // the resolver did not load through Prisma (sendMessage's, from the turn) is not read again.
      resolve: async (message, _args, ctx) => {
        const calls = storedToolCalls(message);
        if (calls.length === 0) return [];
        const results = await ctx.toolResults.loadMany(calls.map((call) => toolResultKey(message.conversationId, call.id)));
        return toolCallsOf(
          message,
          results.map((r) => (r instanceof Error ? null : r)),
        );
      },
    }),
    toolCallId: t.exposeString("toolCallId", {
      nullable: true,
      description: "On tool messages: the id of the tool call this result answers.",
    }),
  }),
});
