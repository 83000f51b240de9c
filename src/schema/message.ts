import { builder } from "./builder.js";

export const MessageRoleEnum = builder.enumType("MessageRole", {
  values: {
    USER: { value: "user" },
    ASSISTANT: { value: "assistant" },
    TOOL: { value: "tool" },
  } as const,
});

export const MessageRef = builder.prismaNode("Message", {
  id: { field: "id" },
  findUnique: (id, ctx) => ({ id, userId: ctx.viewer.userId }),
  fields: (t) => ({
    role: t.expose("role", { type: MessageRoleEnum }),
    content: t.exposeString("content"),
    seq: t.exposeInt("seq", { description: "1, 2, 3… within the conversation: the order the assistant saw." }),
    createdAt: t.expose("createdAt", { type: "DateTime" }),
    conversation: t.relation("conversation"),
  }),
});
