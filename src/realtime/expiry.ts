import { armDeadline } from "./deadline-timer.js";
import { endWhen } from "./end-when.js";

/**
 * Ends a subscription's stream when the viewer's authorization runs out
 * (`expiresAt`, seconds since the epoch: the token's exp, capped by
 * AUTH_MAX_TOKEN_AGE), so a long-lived stream never outlives it (SSE and
 * WebSocket alike).
 */
export function untilExpiry<T>(source: AsyncIterableIterator<T>, expiresAt: number): AsyncIterableIterator<T> {
  return endWhen(source, (end) => {
    const deadline = armDeadline(expiresAt * 1000, end);
    return () => deadline.cancel();
  });
}
