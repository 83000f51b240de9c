import type { Conversation } from "../generated/prisma/client.js";
import { ChangeFeed, type ChangeKind } from "./change-feed.js";
import type { FeedContext } from "./feed.js";
import type { ConversationNotification } from "./protocol.js";

/**
 * conversationChanged for one user: a ChangeFeed (./change-feed.ts) over
 * conversations. UPDATED covers a rename and new activity alike (a settled
 * message moves last_seq and updated_at); an answer's streaming flushes do
 * not touch the conversation row, so they wake nothing here. Tombstones
 * (deleted_conversations) keep only the id: a deleted conversation's messages
 * and turns are gone with it, so DELETED carries no conversation.
 */

export type ConversationChangeKind = ChangeKind;

export interface ConversationChangeEvent {
  kind: ConversationChangeKind;
  conversationId: string;
  /** The conversation now; null for DELETED. */
  conversation: Conversation | null;
}

export class ConversationChangeFeed extends ChangeFeed<Conversation, ConversationChangeEvent> {
  constructor(context: FeedContext, healthyAt: () => Date | undefined) {
    const { db, userId } = context;
    const tombstone = { id: true, deletedAt: true } as const;
    super(context, healthyAt, {
      name: "conversationChanged",
      read: (ids) => db.conversation.findMany({ where: { userId, id: { in: ids } } }),
      readGone: async (ids) => (await db.deletedConversation.findMany({ where: { userId, id: { in: ids } }, select: tombstone })).map(gone),
      changedSince: (from) => db.conversation.findMany({ where: { userId, updatedAt: { gte: from } }, orderBy: { updatedAt: "asc" } }),
      deletedSince: async (from) =>
        (
          await db.deletedConversation.findMany({ where: { userId, deletedAt: { gte: from } }, orderBy: { deletedAt: "asc" }, select: tombstone })
        ).map(gone),
      event: (kind, conversationId, conversation) => ({ kind, conversationId, conversation }),
      // What the list shows; the lease columns change without moving updated_at and are left out.
      state: (row) => JSON.stringify([row.updatedAt.toISOString(), row.title, row.lastSeq]),
    });
  }

  hint(note: ConversationNotification): void {
    this.hintRow(note.op, note.conversationId);
  }
}

function gone(tombstone: { id: string; deletedAt: Date }) {
  return { id: tombstone.id, deletedAt: tombstone.deletedAt, last: null };
}
