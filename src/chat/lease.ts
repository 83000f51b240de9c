import { setTimeout as sleep } from "node:timers/promises";
import { randomUUID } from "node:crypto";
import type { Db } from "../db/client.js";
import { AppError, ErrorCode, notFound } from "../errors.js";

/**
 * A per-conversation turn lock kept in the conversation row. A session-level
 * advisory lock would pin a connection for the whole turn and silently fail
 * behind Neon's transaction pooler; a lease with an expiry needs neither, and
 * a crashed instance's lease simply runs out.
 */
export interface Lease {
  id: string;
  conversationId: string;
  release(): Promise<void>;
}

export interface AcquireOptions {
  ttlMs: number;
  /** performance.now() value after which waiting gives up. */
  deadline: number;
}

export function newLeaseId(): string {
  return randomUUID();
}

export function leaseHandle(db: Db, conversationId: string, id: string): Lease {
  return {
    id,
    conversationId,
    release: async () => {
      await db.$executeRaw`
        UPDATE conversations SET turn_lease_id = NULL, turn_lease_expires_at = NULL
        WHERE id = ${conversationId}::uuid AND turn_lease_id = ${id}::uuid`;
    },
  };
}

/** Waits for the conversation's lease; NOT_FOUND when the conversation is not the user's. */
export async function acquireLease(db: Db, userId: string, conversationId: string, options: AcquireOptions): Promise<Lease> {
  const id = newLeaseId();
  for (let wait = 20; ; wait = Math.min(wait * 2, 250)) {
    const taken = await db.$executeRaw`
      UPDATE conversations
      SET turn_lease_id = ${id}::uuid,
          turn_lease_expires_at = now() + make_interval(secs => ${options.ttlMs / 1000})
      WHERE id = ${conversationId}::uuid AND user_id = ${userId}
        AND (turn_lease_id IS NULL OR turn_lease_expires_at < now())`;
    if (taken === 1) return leaseHandle(db, conversationId, id);
    const exists = await db.conversation.count({ where: { id: conversationId, userId } });
    if (exists === 0) throw notFound("Conversation");
    if (performance.now() + wait >= options.deadline) {
      throw new AppError(ErrorCode.ASSISTANT_UNAVAILABLE, "The conversation is busy with another message; try again shortly", {
        extensions: { retryable: true },
      });
    }
    await sleep(wait);
  }
}
