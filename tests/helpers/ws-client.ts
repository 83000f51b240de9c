import { createClient, type Client, type FormattedExecutionResult } from "graphql-ws";

type ExecutionResult<T> = FormattedExecutionResult<T, unknown>;
import { WebSocket } from "ws";

/**
 * A graphql-ws client whose subscriptions queue every message, so a test can
 * await the next one without missing any that arrived earlier.
 */
export interface QueuedSubscription<T = Record<string, any>> {
  next(timeoutMs?: number): Promise<ExecutionResult<T>>;
  /** Resolves when the server completes the subscription, or rejects with its error. */
  ended: Promise<void>;
  /** Every message received so far and not yet taken by next(). */
  pending(): ExecutionResult<T>[];
  dispose(): void;
}

export interface TestWsClient {
  client: Client;
  /** The close event, once the socket closes. */
  closed: Promise<{ code: number; reason: string }>;
  subscribe<T = Record<string, any>>(query: string, variables?: Record<string, unknown>): QueuedSubscription<T>;
  dispose(): Promise<void>;
}

export function wsClient(url: string, token: string | undefined, options: { lazy?: boolean } = {}): TestWsClient {
  let onClosed: (event: { code: number; reason: string }) => void = () => {};
  const closed = new Promise<{ code: number; reason: string }>((resolve) => (onClosed = resolve));
  const client = createClient({
    url,
    webSocketImpl: WebSocket,
    lazy: options.lazy ?? false,
    retryAttempts: 0,
    connectionParams: token === undefined ? {} : { authorization: `Bearer ${token}` },
    on: { closed: (event) => onClosed(event as { code: number; reason: string }) },
    onNonLazyError: () => {},
  });
  return {
    client,
    closed,
    subscribe<T>(query: string, variables?: Record<string, unknown>): QueuedSubscription<T> {
      const received: ExecutionResult<T>[] = [];
      const waiters: ((value: ExecutionResult<T>) => void)[] = [];
      let settle: { resolve: () => void; reject: (error: unknown) => void } | undefined;
      const ended = new Promise<void>((resolve, reject) => (settle = { resolve, reject }));
      ended.catch(() => {});
      const dispose = client.subscribe<T>(
        { query, variables },
        {
          next: (value) => {
            const waiter = waiters.shift();
            if (waiter) waiter(value);
            else received.push(value);
          },
          error: (error) => settle?.reject(error),
          complete: () => settle?.resolve(),
        },
      );
      return {
        next: (timeoutMs = 10_000) => {
          const queued = received.shift();
          if (queued) return Promise.resolve(queued);
          return new Promise((resolve, reject) => {
            const waiter = (value: ExecutionResult<T>) => {
              clearTimeout(timer);
              resolve(value);
            };
            // A waiter that gave up must not swallow the next message.
            const timer = setTimeout(() => {
              waiters.splice(waiters.indexOf(waiter), 1);
              reject(new Error(`no subscription message within ${timeoutMs} ms`));
            }, timeoutMs);
            waiters.push(waiter);
          });
        },
        ended,
        pending: () => [...received],
        dispose,
      };
    },
    dispose: () => client.dispose() as Promise<void>,
  };
}
