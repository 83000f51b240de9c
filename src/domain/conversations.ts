import type { Db } from "../db/client.js";
import { notFound } from "../errors.js";
import type { Prisma } from "../generated/prisma/client.js";
import { Bounds, optionalText } from "./bounds.js";

export type ConversationQuery =
  | { select?: Prisma.ConversationSelect }
  | { include?: Prisma.ConversationInclude }
  | Record<string, never>;

/** Most recently updated first; the id breaks ties so cursors are stable. */
export const CONVERSATION_ORDER: Prisma.ConversationOrderByWithRelationInput[] = [
  { updatedAt: "desc" },
  { id: "desc" },
];

export async function getConversation(db: Db, userId: string, id: string, query: ConversationQuery = {}) {
  const conversation = await db.conversation.findFirst({ ...query, where: { id, userId } });
  if (!conversation) throw notFound("Conversation");
  return conversation;
}

export async function createConversation(
  db: Db,
  userId: string,
  input: { title?: string | null | undefined },
  query: ConversationQuery = {},
  field = "title",
) {
  const title = optionalText(field, input.title ?? null, Bounds.conversationTitle);
  return db.conversation.create({ ...query, data: { userId, title } });
}

/** Deletes the conversation and, by the foreign key's cascade, its messages. */
export async function deleteConversation(db: Db, userId: string, id: string): Promise<void> {
  const { count } = await db.conversation.deleteMany({ where: { id, userId } });
  if (count === 0) throw notFound("Conversation");
}
