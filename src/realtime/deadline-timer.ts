/**
 * setTimeout's longest delay (about 24.8 days). Node fires a longer one after
 * 1 ms instead, which would end a 30-day token's socket at once.
 */
export const MAX_TIMER_DELAY_MS = 2 ** 31 - 1;

export interface Deadline {
  /** Stops it; `fn` will not be called. Safe to call more than once, or after it fired. */
  cancel(): void;
}

/**
 * Calls `fn` once, asynchronously, when the wall clock reaches `atMs`
 * (milliseconds since the epoch), however far away that is: it waits in steps
 * of at most `maxStepMs` and re-reads the clock after each. A deadline already
 * past fires on the next turn of the event loop. The timers are unref'd: a
 * pending deadline never keeps the process alive.
 */
export function armDeadline(atMs: number, fn: () => void, maxStepMs = MAX_TIMER_DELAY_MS): Deadline {
  if (Number.isNaN(atMs)) throw new RangeError("armDeadline needs a time in milliseconds, got NaN");
  let timer: NodeJS.Timeout | undefined;
  let done = false;
  const step = () => {
    if (done) return;
    const remaining = atMs - Date.now();
    if (remaining <= 0) {
      done = true;
      fn();
      return;
    }
    timer = setTimeout(step, Math.min(remaining, maxStepMs));
    timer.unref();
  };
  timer = setTimeout(step, 0);
  timer.unref();
  return {
    cancel: () => {
      done = true;
      clearTimeout(timer);
    },
  };
}
