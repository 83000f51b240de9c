/**
 * A push-to-pull async iterator for one subscriber. Values are queued so none
 * are missed while the consumer is busy; a consumer that falls too far behind
 * is ended with an error rather than growing memory without bound.
 */
export class SubscriptionQueue<T> implements AsyncIterableIterator<T> {
  private readonly values: T[] = [];
  private waiting: ((result: IteratorResult<T>) => void) | undefined;
  private failWaiting: ((error: unknown) => void) | undefined;
  private done = false;
  private failure: unknown;

  constructor(
    private readonly onClose: () => void,
    private readonly maxQueued = 10_000,
  ) {}

  get closed(): boolean {
    return this.done;
  }

  push(value: T): void {
    if (this.done) return;
    if (this.waiting) {
      const resolve = this.waiting;
      this.waiting = undefined;
      this.failWaiting = undefined;
      resolve({ value, done: false });
      return;
    }
    if (this.values.length >= this.maxQueued) {
      this.fail(new Error("The subscriber fell too far behind; resubscribe with afterSeq to resume"));
      return;
    }
    this.values.push(value);
  }

  /** Ends the stream with an error the client will see. */
  fail(error: unknown): void {
    if (this.done) return;
    this.failure = error;
    this.finish();
    if (this.failWaiting) {
      const reject = this.failWaiting;
      this.waiting = undefined;
      this.failWaiting = undefined;
      reject(error);
    }
  }

  next(): Promise<IteratorResult<T>> {
    const value = this.values.shift();
    if (value !== undefined) return Promise.resolve({ value, done: false });
    if (this.failure !== undefined) {
      const failure = this.failure;
      this.failure = undefined;
      return Promise.reject(failure);
    }
    if (this.done) return Promise.resolve({ value: undefined, done: true });
    return new Promise((resolve, reject) => {
      this.waiting = resolve;
      this.failWaiting = reject;
    });
  }

  return(): Promise<IteratorResult<T>> {
    this.values.length = 0;
    this.finish();
    if (this.waiting) {
      const resolve = this.waiting;
      this.waiting = undefined;
      this.failWaiting = undefined;
      resolve({ value: undefined, done: true });
    }
    return Promise.resolve({ value: undefined, done: true });
  }

  [Symbol.asyncIterator](): AsyncIterableIterator<T> {
    return this;
  }

  private finish(): void {
    if (this.done) return;
    this.done = true;
    this.onClose();
  }
}
