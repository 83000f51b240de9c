import DataLoader from "dataloader";
import type { Db } from "../db/client.js";
import type { Message } from "../generated/prisma/client.js";

export function toolResultKey(conversationId: string, toolCallId: string): string {
  return `${conversationId}:${toolCallId}`;
}

/** One query for all tool results a request's messages need, instead of one per assistant message. */
export function createToolResultLoader(db: Db, userId: string): DataLoader<string, Message | null> {
  return new DataLoader(async (keys) => {
    const pairs = keys.map((key) => {
      const at = key.indexOf(":");
      return { conversationId: key.slice(0, at), toolCallId: key.slice(at + 1) };
    });
    const rows = await db.message.findMany({
      where: {
        userId,
        role: "tool",
        conversationId: { in: [...new Set(pairs.map((p) => p.conversationId))] },
        toolCallId: { in: [...new Set(pairs.map((p) => p.toolCallId))] },
      },
    });
    const byKey = new Map(rows.map((row) => [toolResultKey(row.conversationId, row.toolCallId ?? ""), row]));
    return keys.map((key) => byKey.get(key) ?? null);
  });
}
