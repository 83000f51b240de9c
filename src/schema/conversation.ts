import { createConversation, deleteConversation, getConversation, listConversationPage, updateConversation } from "../domain/conversations.js";
import { builder } from "./builder.js";
import { parseId, toGlobalId } from "../lib/ids.js";

export const ConversationRef = builder.prismaNode("Conversation", {
  id: { field: "id" },
  findUnique: (id, ctx) => ({ id, userId: ctx.viewer.userId }),
  fields: (t) => ({
    title: t.exposeString("title", { nullable: true }),
    createdAt: t.expose("createdAt", { type: "DateTime" }),
    updatedAt: t.expose("updatedAt", { type: "DateTime" }),
    messages: t.relatedConnection(
      "messages",
      {
        cursor: "id",
        description: "The conversation's messages in seq order. Use `last` for the newest.",
        query: { orderBy: { seq: "asc" } },
      },
      { name: "MessageConnection" },
      { name: "MessageEdge" },
    ),
  }),
});

const CreateConversationInput = builder.inputType("CreateConversationInput", {
  fields: (t) => ({
    title: t.string({ description: "At most 200 characters." }),
  }),
});

const UpdateConversationInput = builder.inputType("UpdateConversationInput", {
  description: "Omitted fields stay as they are; `title: null` (or blank) clears the title.",
  fields: (t) => ({
    id: t.id({ required: true }),
    title: t.string({ description: "At most 200 characters." }),
  }),
});

builder.queryFields((t) => ({
  conversations: t.prismaConnection(
    {
      type: "Conversation",
      cursor: "id",
      description: "The viewer's conversations, most recently updated first.",
      resolve: (query, _root, _args, ctx) => listConversationPage(ctx.db, ctx.viewer.userId, query),
    },
    { name: "ConversationConnection" },
    { name: "ConversationEdge" },
  ),
  conversation: t.prismaField({
    type: "Conversation",
    nullable: true,
    args: { id: t.arg.id({ required: true }) },
    resolve: (query, _root, args, ctx) => getConversation(ctx.db, ctx.viewer.userId, parseId(args.id, "id", "Conversation"), query),
  }),
}));

builder.mutationFields((t) => ({
  createConversation: t.prismaField({
    type: "Conversation",
    args: { input: t.arg({ type: CreateConversationInput, required: false }) },
    resolve: (query, _root, { input }, ctx) => createConversation(ctx.db, ctx.viewer.userId, { title: input?.title }, query, "input.title"),
  }),
  updateConversation: t.prismaField({
    type: "Conversation",
    description: "Renames a conversation. Its subscribers (conversationChanged) see the change; an unchanged title changes nothing.",
    args: { input: t.arg({ type: UpdateConversationInput, required: true }) },
    resolve: (query, _root, { input }, ctx) =>
      updateConversation(ctx.db, ctx.viewer.userId, parseId(input.id, "input.id", "Conversation"), { title: input.title }, query, "input"),
  }),
  deleteConversation: t.field({
    type: "ID",
    description: "Deletes the conversation and all its messages; returns its ID.",
    args: { id: t.arg.id({ required: true }) },
    resolve: async (_root, args, ctx) => {
      const id = parseId(args.id, "id", "Conversation");
      await deleteConversation(ctx.db, ctx.viewer.userId, id);
      return toGlobalId("Conversation", id);
    },
  }),
}));
