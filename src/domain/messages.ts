import type { Db, DbClient } from "../db/client.js";
import { notFound } from "../lib/errors.js";
import type { MessageRole, MessageStatus, Prisma } from "../generated/prisma/client.js";

export type MessageQuery = { select?: Prisma.MessageSelect } | { include?: Prisma.MessageInclude } | Record<string, never>;

export interface NewMessage {
  role: MessageRole;
  content: string;
  toolPlan?: string | null;
  toolCalls?: Prisma.InputJsonValue | null;
  toolCallId?: string | null;
  clientMessageId?: string | null;
  stopCode?: string | null;
  /** COMPLETE unless given: only an answer being streamed starts STREAMING. */
  status?: MessageStatus;
}

export async function getMessage(db: Db, userId: string, id: string, query: MessageQuery = {}) {
  const message = await db.message.findFirst({ ...query, where: { id, userId } });
  if (!message) throw notFound("Message");
  return message;
}

/**
 * Appends settled messages to a conversation inside the caller's transaction.
 *
 * Bumping `last_seq` row-locks the conversation until commit, so concurrent
 * writers take turns: seqs are dense, and they commit in seq order. A reader
 * that has seen seq N can never later see a smaller seq appear.
 */
export async function appendMessages(tx: DbClient, userId: string, conversationId: string, messages: readonly NewMessage[]) {
  const bumped = await tx.conversation.updateManyAndReturn({
    where: { id: conversationId, userId },
    // The conversations_touch_updated_at trigger moves updated_at, by the database's clock.
    data: { lastSeq: { increment: messages.length } },
    select: { lastSeq: true },
  });
  const conversation = bumped[0];
  if (!conversation) throw notFound("Conversation");
  const firstSeq = conversation.lastSeq - messages.length + 1;
  const created = await tx.message.createManyAndReturn({
    data: messages.map((message, index) => ({
      conversationId,
      userId,
      seq: firstSeq + index,
      role: message.role,
      content: message.content,
      toolPlan: message.toolPlan ?? null,
      toolCalls: message.toolCalls ?? undefined,
      toolCallId: message.toolCallId ?? null,
      clientMessageId: message.clientMessageId ?? null,
      stopCode: message.stopCode ?? null,
      status: message.status ?? "COMPLETE",
    })),
  });
  return created.sort((a, b) => a.seq - b.seq);
}
