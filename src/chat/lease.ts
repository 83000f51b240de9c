import { setTimeout as sleep } from "node:timers/promises";
import { randomUUID } from "node:crypto";
import { backoffDelay } from "../backoff.js";
import type { Db, DbClient } from "../db/client.js";
import { AppError, ErrorCode, notFound } from "../errors.js";
import { Prisma } from "../generated/prisma/client.js";

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

/** How often a waiting turn looks at the lease again: from about 20 ms, doubling, at most 250 ms apart (with jitter). */
const LEASE_BACKOFF = { initialMs: 20, maxMs: 250 };

function newLeaseId(): string {
  return randomUUID();
}

/**
 * When a lease taken now runs out, by the database's clock: expiry is compared
 * with now() in SQL, so it is never computed from this process's clock.
 */
function expiryAfter(ttlMs: number): Prisma.Sql {
  return Prisma.sql`now() + make_interval(secs => ${ttlMs / 1000})`;
}

/**
 * Takes the lease of a conversation created in `tx`. No one else can see the
 * row before `tx` commits, so nothing can hold the lease already.
 */
export async function leaseNewConversation(tx: DbClient, conversationId: string, ttlMs: number): Promise<string> {
  const id = newLeaseId();
  await tx.$executeRaw`
    UPDATE conversations SET turn_lease_id = ${id}::uuid, turn_lease_expires_at = ${expiryAfter(ttlMs)}
    WHERE id = ${conversationId}::uuid`;
  return id;
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
  for (let attempt = 0; ; attempt += 1) {
    const taken = await db.$executeRaw`
      UPDATE conversations
      SET turn_lease_id = ${id}::uuid,
          turn_lease_expires_at = ${expiryAfter(options.ttlMs)}
      WHERE id = ${conversationId}::uuid AND user_id = ${userId}
        AND (turn_lease_id IS NULL OR turn_lease_expires_at < now())`;
    if (taken === 1) return leaseHandle(db, conversationId, id);
    const exists = await db.conversation.count({ where: { id: conversationId, userId } });
    if (exists === 0) throw notFound("Conversation");
    const wait = backoffDelay(attempt, LEASE_BACKOFF);
    if (performance.now() + wait >= options.deadline) {
      throw new AppError(ErrorCode.ASSISTANT_UNAVAILABLE, "The conversation is busy with another message; try again shortly", {
        extensions: { retryable: true },
      });
    }
    await sleep(wait);
  }
}
