import { armDeadline } from "./deadline-timer.js";

/**
 * Ends a subscription's stream when the viewer's authorization runs out
 * (`expiresAt`, seconds since the epoch: the token's exp, capped by
 * AUTH_MAX_TOKEN_AGE), so a long-lived stream never outlives it (SSE and
 * WebSocket alike).
 */
export function untilExpiry<T>(source: AsyncIterableIterator<T>, expiresAt: number): AsyncIterableIterator<T> {
  let expire: (result: IteratorResult<T>) => void = () => {};
  const expired = new Promise<IteratorResult<T>>((resolve) => (expire = resolve));
  const deadline = armDeadline(expiresAt * 1000, () => expire({ value: undefined, done: true }));
  const stop = async (): Promise<IteratorResult<T>> => {
    deadline.cancel();
    await source.return?.();
    return { value: undefined, done: true };
  };
  const iterator: AsyncIterableIterator<T> = {
    next: async () => {
      const result = await Promise.race([source.next(), expired]);
      if (result.done) return stop();
      return result;
    },
    return: stop,
    [Symbol.asyncIterator]: () => iterator,
  };
  return iterator;
}
