/**
 * Ends a subscription's stream when something outside it says so (the token
 * expires, the server drains). `arm` is given the function that ends the
 * stream and returns how to disarm it. Ending returns the source, which
 * settles a pull waiting on it (Repeaters and graphql-js' mapped iterators
 * both do). No pull races a promise that lives as long as the trigger: such
 * a race adds a reaction to that promise on every event and keeps every
 * event alive until it fires.
 */
export function endWhen<T>(source: AsyncIterator<T>, arm: (end: () => void) => () => void): AsyncIterableIterator<T> {
  let ended = false;
  const disarm = arm(() => {
    ended = true;
    void source.return?.();
  });
  const stop = async (): Promise<IteratorResult<T>> => {
    disarm();
    await source.return?.();
    return { value: undefined, done: true };
  };
  const iterator: AsyncIterableIterator<T> = {
    next: async () => {
      if (ended) return stop();
      const result = await source.next();
      if (result.done || ended) return stop();
      return result;
    },
    return: stop,
    [Symbol.asyncIterator]: () => iterator,
  };
  return iterator;
}
