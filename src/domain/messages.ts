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

/**
 * Adds an answer that is about to stream (STREAMING), at the next seq, inside
 * the caller's transaction. It takes the conversation's row lock like
 * appendMessages but leaves `last_seq` where it is: last_seq is the newest
 * *settled* message, so anyone who starts following the conversation from
 * last_seq meets this answer when it settles (settleStreamingMessage), and a
 * row above last_seq is always one still streaming.
 */
export async function insertStreamingMessage(tx: DbClient, userId: string, conversationId: string, content: string) {
  const [conversation] = await tx.$queryRaw<{ last_seq: number }[]>`
    SELECT last_seq FROM conversations WHERE id = ${conversationId}::uuid AND user_id = ${userId} FOR UPDATE`;
  if (!conversation) throw notFound("Conversation");
  return tx.message.create({
    data: { conversationId, userId, seq: conversation.last_seq + 1, role: "assistant", content, status: "STREAMING" },
  });
}

/**
 * Gives a STREAMING message its final fields and status, and moves last_seq
 * over it, inside the caller's transaction. False if it was not STREAMING.
 */
export async function settleStreamingMessage(
  tx: DbClient,
  conversationId: string,
  messageId: string,
  data: Prisma.MessageUpdateManyMutationInput & { status: Exclude<MessageStatus, "STREAMING"> },
): Promise<boolean> {
  const { count } = await tx.message.updateMany({ where: { id: messageId, conversationId, status: "STREAMING" }, data });
  if (count === 0) return false;
  await tx.$executeRaw`
    UPDATE conversations SET last_seq = GREATEST(last_seq, (SELECT seq FROM messages WHERE id = ${messageId}::uuid))
    WHERE id = ${conversationId}::uuid`;
  return true;
}
