import { setTimeout as sleep } from "node:timers/promises";
import { randomUUID } from "node:crypto";
import { backoffDelay, type BackoffPolicy } from "../lib/backoff.js";
import type { Db } from "../db/client.js";
import { releaseLease, tryTakeLease } from "../domain/conversation-log.js";
import { AppError, ErrorCode, notFound } from "../lib/errors.js";

/**
 * A per-conversation turn lock kept in the conversation row. A session-level
 * advisory lock would pin a connection for the whole turn and silently fail
 * behind Neon's transaction pooler; a lease with an expiry needs neither, and
 * a crashed instance's lease simply runs out. The SQL is the conversation
 * log's (src/domain/conversation-log.ts); this is the waiting.
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
const LEASE_BACKOFF: BackoffPolicy = { initialMs: 20, maxMs: 250 };

/** The lease outlives the turn's own time, so only a dead instance's lease ever expires. */
const LEASE_GRACE_MS = 30_000;

/** How long a turn's lease lasts: its own time, plus a margin for its last writes. */
export function leaseTtlMs(turnTimeoutMs: number): number {
  return turnTimeoutMs + LEASE_GRACE_MS;
}

export function newLeaseId(): string {
  return randomUUID();
}

export function leaseHandle(db: Db, conversationId: string, id: string): Lease {
  return { id, conversationId, release: () => releaseLease(db, conversationId, id) };
}

/** Waits for the conversation's lease; NOT_FOUND when the conversation is not the user's. */
export async function acquireLease(db: Db, userId: string, conversationId: string, options: AcquireOptions): Promise<Lease> {
  const id = newLeaseId();
  return retryWhileBusy(options.deadline, async () => {
    const taken = await tryTakeLease(db, userId, conversationId, id, options.ttlMs);
    if (taken === "missing") throw notFound("Conversation");
    return taken === "busy" ? BUSY : leaseHandle(db, conversationId, id);
  });
}

/** What a try at the lease answers while another turn holds it. */
export const BUSY = Symbol("busy");

/**
 * Tries `attempt` until it takes the lease (anything but BUSY), backing off
 * between tries; ASSISTANT_UNAVAILABLE (retryable) once `deadline` would pass.
 */
export async function retryWhileBusy<T>(deadline: number, attempt: () => Promise<T | typeof BUSY>): Promise<T> {
  for (let tries = 0; ; tries += 1) {
    const outcome = await attempt();
    if (outcome !== BUSY) return outcome;
    const wait = backoffDelay(tries, LEASE_BACKOFF);
    if (performance.now() + wait >= deadline) {
      throw new AppError(ErrorCode.ASSISTANT_UNAVAILABLE, "The conversation is busy with another message; try again shortly", {
        extensions: { retryable: true },
      });
    }
    await sleep(wait);
  }
}
