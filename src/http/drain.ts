import { setMaxListeners } from "node:events";
import type { ServerResponse } from "node:http";
import type { Plugin } from "graphql-yoga";
import { isAsyncIterable } from "graphql-yoga";

/**
 * Shutdown bookkeeping for the front door: which responses are still being
 * written, and whether new work is still welcome. Draining refuses new
 * requests, ends subscription streams (SSE gets its `complete`), and lets
 * the requests already accepted finish.
 */
export class Drain {
  private readonly controller = new AbortController();
  private active = 0;
  private waiters: (() => void)[] = [];

  constructor() {
    // Every open subscription listens for the drain: thousands of listeners are expected.
    setMaxListeners(0, this.controller.signal);
  }

  get draining(): boolean {
    return this.controller.signal.aborted;
  }

  get signal(): AbortSignal {
    return this.controller.signal;
  }

  get inFlight(): number {
    return this.active;
  }

  /** Counts a response until it is finished or its connection is gone. */
  track(res: ServerResponse): void {
    this.active += 1;
    res.once("close", () => {
      this.active -= 1;
      if (this.active === 0) for (const wake of this.waiters.splice(0)) wake();
    });
  }

  begin(): void {
    this.controller.abort();
  }

  /** Resolves true once nothing is in flight, or false when `ms` passes first. */
  settled(ms: number): Promise<boolean> {
    if (this.active === 0) return Promise.resolve(true);
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((wake) => wake !== done);
        resolve(false);
      }, ms);
      const done = () => {
        clearTimeout(timer);
        resolve(true);
      };
      this.waiters.push(done);
    });
  }
}

/** Subscription streams end (complete) when the drain begins, on every transport. */
export function useDrainableSubscriptions(signal: AbortSignal): Plugin {
  return {
    onSubscribe() {
      return {
        onSubscribeResult({ result, setResult }) {
          if (isAsyncIterable(result)) setResult(endOnAbort(result, signal));
        },
      };
    },
  };
}

/**
 * Each pull listens for the drain only while it waits, then lets go: racing every pull against
 * one long-lived promise would keep a reaction, and so the event, alive until shutdown.
 */
function endOnAbort<T>(source: AsyncIterable<T>, signal: AbortSignal): AsyncIterableIterator<T> {
  const iterator = source[Symbol.asyncIterator]();
  const stop = async (): Promise<IteratorResult<T>> => {
    await iterator.return?.();
    return { value: undefined, done: true };
  };
  const next = (): Promise<IteratorResult<T>> => {
    if (signal.aborted) return stop();
    return new Promise((resolve, reject) => {
      const onAbort = () => resolve(stop());
      signal.addEventListener("abort", onAbort, { once: true });
      iterator.next().then(
        (result) => {
          signal.removeEventListener("abort", onAbort);
          resolve(result);
        },
        (error: unknown) => {
          signal.removeEventListener("abort", onAbort);
          reject(error instanceof Error ? error : new Error(String(error)));
        },
      );
    });
  };
  const wrapped: AsyncIterableIterator<T> = {
    next,
    return: stop,
    throw: async (error: unknown) => {
      await iterator.return?.();
      throw error;
    },
    [Symbol.asyncIterator]: () => wrapped,
  };
  return wrapped;
}
