/**
 * Ends a subscription's stream when the token that opened it expires, so a
 * long-lived stream never outlives its authorization (SSE and WebSocket alike).
 */
export function untilExpiry<T>(source: AsyncIterableIterator<T>, expiresAt: number | undefined): AsyncIterableIterator<T> {
  if (expiresAt === undefined) return source;
  let timer: NodeJS.Timeout | undefined;
  const expired = new Promise<IteratorResult<T>>((resolve) => {
    timer = setTimeout(() => resolve({ value: undefined, done: true }), Math.max(0, expiresAt * 1000 - Date.now()));
  });
  const stop = async (): Promise<IteratorResult<T>> => {
    clearTimeout(timer);
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
