import type { Db } from "../db/client.js";
import type { Logger } from "../lib/logger.js";
import type { ReconnectInfo } from "./transport.js";

/**
 * One kind of push (messages, tasks) for one user. A feed keeps its
 * subscribers and the work they are owed: starting points to read, hinted
 * rows to re-read, catch-up after a listener outage. The user's hub decides
 * when flush() runs (one at a time, in the user's order) and retries it with
 * backoff when it throws; a feed keeps whatever failed pending until a flush
 * succeeds or its subscribers leave, so nothing is dropped and, because every
 * delivery is checked against what each subscriber already has, nothing is
 * delivered twice.
 *
 * The per-conversation subscriptions (messageStream, turnUpdated) follow the
 * latest state of a row per subscriber instead: conversation-feed.ts, whose
 * top comment says why it is a base of its own.
 */
export interface Feed {
  /** Subscribers registered now (starting, replaying or live). */
  readonly size: number;
  /** Events waiting in its subscribers' buffers. */
  readonly buffered: number;
  /** Everything pending: starts, catch-up, hinted re-reads. Throws when the database fails. */
  flush(): Promise<void>;
  /** The listener was down: what committed since `info.since` is caught up at the next flush. */
  reconnected(info: ReconnectInfo): void;
}

/** The subscriptions whose deliveries are observed (notification lag): those whose rows carry their commit time. */
export type ChangeSubscription = "messageAdded" | "taskChanged" | "conversationChanged";

export interface FeedContext {
  userId: string;
  db: Db;
  logger: Logger;
  /** Asks the user's hub for a flush. */
  requestFlush: () => void;
  /** Called once per subscription when nothing committed from now on can be missed. */
  established: () => void;
  /** Called when an event reached subscribers, with the database time its change committed at (the metrics' notification lag). */
  delivered?: ((kind: ChangeSubscription, committedAt: Date) => void) | undefined;
}

/** What the hub reports of its deliveries: the realtime metrics' hook (src/telemetry/metrics.ts), or nothing. */
export interface DeliveryObserver {
  /** An event of `kind` reached its subscribers; its change committed at `committedAt` (database time). */
  delivered(kind: ChangeSubscription, committedAt: Date): void;
}

export interface FeedLimits {
  /** Events that may wait for one subscriber; one more ends it with SUBSCRIPTION_OVERFLOW. */
  bufferLimit: number;
  /** Rows read per query (replays and live re-reads). */
  pageSize: number;
}

/**
 * A feed's subscribers, and the queue of those still waiting for their
 * starting point. Both feeds start subscribers the same way: registered at
 * once, queued when their LISTEN is in place, and taken off the queue only
 * once a flush has read their start (a failed read leaves them queued).
 */
export class SubscriberRoster<S extends { outlet: { readonly closed: boolean; readonly buffered: number } }> {
  readonly all = new Set<S>();
  private starting: S[] = [];

  constructor(private readonly requestFlush: () => void) {}

  get size(): number {
    return this.all.size;
  }

  get buffered(): number {
    let count = 0;
    for (const sub of this.all) count += sub.outlet.buffered;
    return count;
  }

  /** Registers a subscriber; it is queued for its start by start(). */
  add(sub: S): { start(): void; remove(): void } {
    this.all.add(sub);
    return {
      start: () => {
        if (sub.outlet.closed) return;
        this.starting.push(sub);
        this.requestFlush();
      },
      remove: () => {
        this.all.delete(sub);
        this.starting = this.starting.filter((other) => other !== sub);
      },
    };
  }

  /** The open subscribers waiting for their start. */
  waiting(): S[] {
    const batch = this.starting.filter((sub) => !sub.outlet.closed);
    if (batch.length === 0) this.starting = [];
    return batch;
  }

  /** These have their starting point: off the queue. */
  started(batch: readonly S[]): void {
    const taken = new Set(batch);
    this.starting = this.starting.filter((sub) => !taken.has(sub));
  }
}
