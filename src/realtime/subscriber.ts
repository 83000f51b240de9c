import { Repeater, type RepeaterBuffer } from "graphql-yoga";

/**
 * One subscriber's stream: a Repeater (Yoga's) over a bounded buffer. The
 * feeds push into its Outlet; graphql-ws or SSE pull from it as fast as their
 * socket takes the data, so a consumer that stops reading leaves events in
 * the buffer, and one that falls more than `limit` behind is ended instead of
 * growing memory without bound.
 */

/**
 * The last item of a stream that ends with an error for the client (too many
 * subscriptions, fell behind, database failure at start). The subscription
 * field's resolver throws it, so it is masked and coded like any other error,
 * and both graphql-ws and SSE send it as a result and then complete.
 */
export class StreamEnd {
  constructor(readonly error: unknown) {}
}

/**
 * For a subscription field's resolve: a stream's last item may say why it ended (too many
 * subscriptions, fell behind); thrown here, it is masked and coded like any resolver error,
 * and graphql-ws and SSE alike send it as a result before completing.
 */
export function valueOrEnd<T>(event: T | StreamEnd): T {
  if (event instanceof StreamEnd) throw event.error;
  return event;
}

export interface Outlet<T> {
  /** Queues a value; false when the stream is closed (ended, cancelled or overflowed). */
  push(value: T): boolean;
  /** Resolves once at most `level` values wait to be pulled, or the stream is closed. */
  drained(level: number): Promise<void>;
  /** Ends the stream; `error`, when given, is the last thing the consumer gets. */
  end(error?: unknown): void;
  /** Runs `cleanup` when the stream ends for any reason (at once if it has ended). */
  onClose(cleanup: () => void): void;
  readonly closed: boolean;
  /** Values waiting to be pulled. */
  readonly buffered: number;
}

export interface StreamOptions {
  /** The most values that may wait; one more ends the stream with overflowError(). */
  limit: number;
  overflowError: () => unknown;
}

/**
 * The stream's values wait here. Repeater only asks whether it is full; the
 * outlet also needs its size (to end a consumer that fell behind, dropping
 * what waits) and a signal when it drains (for paged replays).
 */
class BoundedBuffer implements RepeaterBuffer {
  private items: unknown[] = [];
  private waiters: { level: number; resolve: () => void }[] = [];

  constructor(private readonly capacity: number) {}

  get size(): number {
    return this.items.length;
  }

  get empty(): boolean {
    return this.items.length === 0;
  }

  get full(): boolean {
    return this.items.length >= this.capacity;
  }

  add(value: unknown): void {
    this.items.push(value);
  }

  remove(): unknown {
    const value = this.items.shift();
    this.wake();
    return value;
  }

  clear(): void {
    this.items = [];
    this.wake();
  }

  whenAtMost(level: number): Promise<void> {
    if (this.items.length <= level) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push({ level, resolve }));
  }

  release(): void {
    for (const waiter of this.waiters.splice(0)) waiter.resolve();
  }

  private wake(): void {
    if (this.waiters.length === 0) return;
    const still: typeof this.waiters = [];
    for (const waiter of this.waiters) {
      if (this.items.length <= waiter.level) waiter.resolve();
      else still.push(waiter);
    }
    this.waiters = still;
  }
}

/**
 * The outlet of one stream: what the feeds push into, and the cleanups that
 * run, once each, when the stream closes for whatever reason.
 */
class StreamOutlet<T> implements Outlet<T> {
  private readonly cleanups: (() => void)[] = [];
  private isClosed = false;

  constructor(
    private readonly buffer: BoundedBuffer,
    private readonly options: StreamOptions,
    /** The Repeater's push and stop. */
    private readonly emit: (value: T | StreamEnd) => void,
    private readonly stop: () => void,
  ) {}

  get closed(): boolean {
    return this.isClosed;
  }

  get buffered(): number {
    return this.buffer.size;
  }

  push(value: T): boolean {
    if (this.isClosed) return false;
    if (this.buffer.size >= this.options.limit) {
      // What waits is dropped at once: the consumer resubscribes from where it was.
      this.buffer.clear();
      this.end(this.options.overflowError());
      return false;
    }
    this.emit(value);
    return true;
  }

  drained(level: number): Promise<void> {
    return this.isClosed ? Promise.resolve() : this.buffer.whenAtMost(level);
  }

  end(error?: unknown): void {
    if (this.isClosed) return;
    if (error !== undefined) this.emit(new StreamEnd(error));
    this.close();
    this.stop();
  }

  onClose(cleanup: () => void): void {
    if (this.isClosed) cleanup();
    else this.cleanups.push(cleanup);
  }

  /** Runs every cleanup, once: the feeds stop pushing, replays stop paging, slots and LISTENs are released. */
  close(): void {
    if (this.isClosed) return;
    this.isClosed = true;
    this.buffer.release();
    for (const cleanup of this.cleanups.splice(0)) cleanup();
  }
}

/**
 * A subscriber's stream. `open` runs when the consumer first pulls (graphql-ws
 * and SSE pull at once): it registers the outlet with a feed and hooks its
 * cleanup with outlet.onClose. Whatever ends the stream — the consumer's
 * return() (unsubscribe, socket closed, token expired, drain), end(),
 * overflow, or `open` failing — runs every cleanup once, so the feeds stop
 * pushing, replays stop paging and the LISTEN is released: a cancelled
 * subscription stops its source. Feeds open streams through Admission
 * (./admission.ts), which holds the user's slot for as long as this lives.
 */
export function subscriberStream<T>(options: StreamOptions, open: (outlet: Outlet<T>) => Promise<void>): AsyncIterableIterator<T | StreamEnd> {
  // One slot beyond the limit for the StreamEnd that tells the consumer why.
  const buffer = new BoundedBuffer(options.limit + 1);
  return new Repeater<T | StreamEnd>(async (push, stop) => {
    const outlet = new StreamOutlet<T>(
      buffer,
      options,
      (value) => void push(value),
      () => stop(),
    );
    try {
      await open(outlet);
    } catch (error) {
      outlet.end(error);
    }
    await stop;
    outlet.close();
  }, buffer);
}
