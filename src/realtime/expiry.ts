import { armDeadline } from "./deadline-timer.js";

/**
 * Ends a subscription's stream when the viewer's authorization runs out
 * (`expiresAt`, seconds since the epoch: the token's exp, capped by
 * AUTH_MAX_TOKEN_AGE), so a long-lived stream never outlives it (SSE and
 * WebSocket alike).
 *
 * At the deadline the source is returned, which ends a pull waiting on it
 * (the realtime streams are Repeaters, whose return() settles pending pulls).
 * No pull races a promise that lives as long as the token: such a race adds
 * a reaction to that promise on every event and keeps every event alive.
 */
export function untilExpiry<T>(source: AsyncIterableIterator<T>, expiresAt: number): AsyncIterableIterator<T> {
  let expired = false;
  const deadline = armDeadline(expiresAt * 1000, () => {
    expired = true;
    void source.return?.();
  });
  const stop = async (): Promise<IteratorResult<T>> => {
    deadline.cancel();
    await source.return?.();
    return { value: undefined, done: true };
  };
  const iterator: AsyncIterableIterator<T> = {
    next: async () => {
      if (expired) return stop();
      const result = await source.next();
      if (result.done || expired) return stop();
      return result;
    },
    return: stop,
    [Symbol.asyncIterator]: () => iterator,
  };
  return iterator;
}
