/**
 * `load`, called at most once while it succeeds: every later call gets the
 * same promise. A rejection is not kept, so the next call tries again.
 */
export function memoized<T>(load: () => Promise<T>): () => Promise<T> {
  let value: Promise<T> | undefined;
  return () => {
    value ??= load().catch((error: unknown) => {
      value = undefined;
      throw error;
    });
    return value;
  };
}
