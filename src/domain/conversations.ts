import type { Db } from "../db/client.js";
import { notFound } from "../lib/errors.js";
import type { Prisma } from "../generated/prisma/client.js";
import { Bounds, optionalText } from "./bounds.js";

export type ConversationQuery = { select?: Prisma.ConversationSelect } | { include?: Prisma.ConversationInclude } | Record<string, never>;

/** Most recently updated first; the id breaks ties so cursors are stable. */
export const CONVERSATION_ORDER: Prisma.ConversationOrderByWithRelationInput[] = [{ updatedAt: "desc" }, { id: "desc" }];

/** What Pothos asks of a connection's page: the selection, and where the page starts (`cursor`, `skip`, `take`). */
export type ConversationPageQuery = Omit<Prisma.ConversationFindManyArgs, "where" | "orderBy">;

/**
 * One page of the user's conversations, most recently updated first. The
 * cursor row is looked up with the user in the filter (see listTaskPage): an
 * id of another user's conversation is an unknown cursor, not a position.
 */
export function listConversationPage(db: Db, userId: string, query: ConversationPageQuery) {
  const cursor = query.cursor === undefined ? undefined : { ...query.cursor, userId };
  return db.conversation.findMany({ ...query, cursor, where: { userId }, orderBy: CONVERSATION_ORDER });
}

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

/**
 * Renames the conversation: `title: null` (or blank) clears it, an omitted
 * title leaves it. A title equal to the current one changes nothing: the
 * triggers see an unchanged row, so updated_at stays and nothing is pushed.
 */
export async function updateConversation(
  db: Db,
  userId: string,
  id: string,
  input: { title?: string | null | undefined },
  query: ConversationQuery = {},
  prefix?: string,
) {
  if (input.title !== undefined) {
    const title = optionalText(prefix ? `${prefix}.title` : "title", input.title, Bounds.conversationTitle);
    const { count } = await db.conversation.updateMany({ where: { id, userId }, data: { title } });
    if (count === 0) throw notFound("Conversation");
  }
  return getConversation(db, userId, id, query);
}

/** Deletes the conversation and, by the foreign key's cascade, its messages. */
export async function deleteConversation(db: Db, userId: string, id: string): Promise<void> {
  const { count } = await db.conversation.deleteMany({ where: { id, userId } });
  if (count === 0) throw notFound("Conversation");
}
