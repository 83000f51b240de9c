import { setMaxListeners } from "node:events";
import type { IncomingMessage, ServerResponse } from "node:http";
import type { Socket } from "node:net";
import type { Plugin } from "graphql-yoga";
import { isAsyncIterable } from "graphql-yoga";
import { endWhen } from "../realtime/end-when.js";

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
  /** The requests in flight on each connection, each as the function that lets it leave the count (once). */
  private readonly byConnection = new WeakMap<Socket, Set<() => void>>();

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

  /**
   * Counts a request from its arrival until its response is written or its connection
   * is gone: answered, refused or abandoned, it leaves the count exactly once. The
   * response's 'close' alone is not enough: a pipelined request queued behind another
   * never gets one when the connection closes first (Node emits it only for the
   * response being written), so the connection's 'close' lets every request on it go.
   * Returns how many requests are in flight on that connection, this one included.
   */
  track(req: IncomingMessage, res: ServerResponse): number {
    const onConnection = this.inFlightOn(req.socket);
    const leave = () => {
      if (!onConnection.delete(leave)) return;
      this.active -= 1;
      if (this.active === 0) for (const wake of this.waiters.splice(0)) wake();
    };
    onConnection.add(leave);
    this.active += 1;
    res.once("close", leave);
    // Closed before its request got here: no 'close' is coming any more.
    if (req.socket.closed) leave();
    return onConnection.size;
  }

  private inFlightOn(socket: Socket): Set<() => void> {
    const known = this.byConnection.get(socket);
    if (known) return known;
    const onConnection = new Set<() => void>();
    this.byConnection.set(socket, onConnection);
    // One listener per connection, however many requests it carries.
    socket.once("close", () => {
      for (const leave of [...onConnection]) leave();
    });
    return onConnection;
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

function endOnAbort<T>(source: AsyncIterable<T>, signal: AbortSignal): AsyncIterableIterator<T> {
  return endWhen(source[Symbol.asyncIterator](), (end) => {
    if (signal.aborted) end();
    else signal.addEventListener("abort", end, { once: true });
    // One listener per open subscription: it must go with the subscription.
    return () => signal.removeEventListener("abort", end);
  });
}
