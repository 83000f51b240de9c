import DataLoader from "dataloader";
import type { Db } from "../db/client.js";
import { findOwnedTasks } from "../domain/tasks.js";
import { getUserSettings, type UserSettings } from "../domain/user-settings.js";
import { approvalsOfCalls } from "../domain/tool-approvals.js";
import type { Message, Task, ToolApproval } from "../generated/prisma/client.js";

export function toolResultKey(conversationId: string, toolCallId: string): string {
  return `${conversationId}:${toolCallId}`;
}

function splitKey(key: string): { conversationId: string; toolCallId: string } {
  const at = key.indexOf(":");
  return { conversationId: key.slice(0, at), toolCallId: key.slice(at + 1) };
}

/** One query for all tool results a request's messages need, instead of one per assistant message. */
export function createToolResultLoader(db: Db, userId: string): DataLoader<string, Message | null> {
  return new DataLoader(async (keys) => {
    const pairs = keys.map(splitKey);
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

/** The approvals of tool calls, by the same `${conversationId}:${toolCallId}` keys, one query per request. */
export function createToolApprovalLoader(db: Db, userId: string): DataLoader<string, ToolApproval | null> {
  return new DataLoader(
    async (keys) => {
      const rows = await approvalsOfCalls(db, userId, keys.map(splitKey));
      // Oldest first, so a later row for the same call (never expected) wins.
      const byKey = new Map(rows.map((row) => [toolResultKey(row.conversationId, row.toolCallId), row]));
      return keys.map((key) => byKey.get(key) ?? null);
      // Batched per tick, never cached: a subscription's context lives across events, and an approval changes between them.
    },
    { cache: false },
  );
}

/** The viewer's tasks by raw id (another user's, or a missing one, is null): what a tool call names. */
export function createTaskLoader(db: Db, userId: string): DataLoader<string, Task | null> {
  return new DataLoader(
    async (ids) => {
      const rows = await findOwnedTasks(db, userId, ids);
      const byId = new Map(rows.map((row) => [row.id, row]));
      return ids.map((id) => byId.get(id) ?? null);
    },
    { cache: false },
  );
}

/** The viewer's settings (its time zone), read once per tick however many tasks ask; never cached, as a subscription's context outlives a change. */
export function createSettingsLoader(db: Db): DataLoader<string, UserSettings> {
  return new DataLoader(
    async (userIds) => {
      // Uncached, a batch repeats its key once per asking task: read each user once.
      const unique = [...new Set(userIds)];
      const settings = await Promise.all(unique.map((userId) => getUserSettings(db, userId)));
      const byUser = new Map(unique.map((userId, index) => [userId, settings[index]]));
      return userIds.map((userId) => byUser.get(userId) ?? new Error("settings not read"));
    },
    { cache: false },
  );
}
