/**
 * Capped exponential backoff with jitter, for everything that waits and tries
 * again: the LISTEN connection's reconnects, realtime re-reads, the chat
 * turn's lease and its hand-back, shared executions and the model's retries.
 * One policy type for all of them.
 */
export interface BackoffPolicy {
  /** The first delay (before jitter). */
  initialMs: number;
  /** No delay is longer than this. */
  maxMs: number;
  /** Retries after the first attempt; unset: as many as the caller's own deadline allows. */
  maxRetries?: number | undefined;
}

/** Whether retry number `attempt` (0 for the first) is within the policy's maxRetries. */
export function mayRetry(attempt: number, policy: BackoffPolicy): boolean {
  return policy.maxRetries === undefined || attempt < policy.maxRetries;
}

/**
 * The delay before retry number `attempt` (0 for the first): initialMs·2^attempt,
 * capped at maxMs, then scaled by a random factor in [0.5, 1) ("equal jitter"),
 * so that many waiters that failed together do not all come back together.
 */
export function backoffDelay(attempt: number, policy: BackoffPolicy, random: () => number = Math.random): number {
  const capped = Math.min(policy.maxMs, policy.initialMs * 2 ** Math.max(0, attempt));
  return capped * (0.5 + random() / 2);
}

/** The same policy with its attempt count: next() grows the delay, reset() starts over after a success. */
export class Backoff {
  private attempt = 0;

  constructor(private readonly policy: BackoffPolicy) {}

  /** Failed attempts since the last reset. */
  get attempts(): number {
    return this.attempt;
  }

  next(): number {
    const delay = backoffDelay(this.attempt, this.policy);
    this.attempt += 1;
    return delay;
  }

  reset(): void {
    this.attempt = 0;
  }
}
