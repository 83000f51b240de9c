import { SubscriberRoster, type Feed, type FeedContext } from "./feed.js";
import type { ReconnectInfo } from "./transport.js";
import type { RowOp } from "./protocol.js";
import type { Outlet } from "./subscriber.js";

/**
 * A feed of one kind of row's changes (taskChanged, conversationChanged) for
 * one user. Hints that arrive together (a burst of inserts in one
 * transaction) are re-read together: one query for the rows, one for the
 * tombstones of deleted ones, whatever their number. Every event object goes
 * to every subscriber that is owed it, the same object to all.
 *
 * What was delivered is remembered per row, not per subscriber (the version
 * of its last delivery, with a delivery counter that tells which subscribers
 * joined after it), and forgotten once no catch-up can read that version again.
 *
 * Deletions are read from tombstones (a table the row's trigger writes in the
 * deleting transaction), so one is delivered even when its wake-up was lost:
 * catch-up after a transport outage reads rows by updated_at and tombstones
 * by deleted_at, both database times.
 *
 * This and MessageFeed are the hub's feeds (feed.ts): every committed change
 * owed to every subscriber once, per-user batches, failed reads retried. The
 * per-conversation subscriptions (messageStream, turnUpdated) have a base of
 * their own, conversation-feed.ts, which says why; both admit through the same
 * Admission.
 */

export type ChangeKind = "CREATED" | "UPDATED" | "DELETED";

/** A row a change feed follows: its id and the database times its trigger keeps. */
export interface ChangedRow {
  id: string;
  createdAt: Date;
  updatedAt: Date;
}

/** What a deletion left: the row's id, when, and its last state where the tombstone keeps one. */
export interface Gone<R> {
  id: string;
  deletedAt: Date;
  last: R | null;
}

/** How a feed reads one kind of row, always scoped to the feed's user. */
export interface ChangeSource<R extends ChangedRow, E> {
  /** The subscription it feeds (the metrics' label). */
  name: "taskChanged" | "conversationChanged";
  /** The rows among `ids` that exist now. */
  read(ids: string[]): Promise<R[]>;
  /** The tombstones among `ids`. */
  readGone(ids: string[]): Promise<Gone<R>[]>;
  /** Rows whose updated_at is `from` or later, oldest first. */
  changedSince(from: Date): Promise<R[]>;
  /** Tombstones whose deleted_at is `from` or later, oldest first. */
  deletedSince(from: Date): Promise<Gone<R>[]>;
  /** The event a subscriber gets. */
  event(kind: ChangeKind, id: string, row: R | null): E;
  /**
   * What tells one version of a row from another: updated_at is the
   * transaction's start at millisecond precision, so two commits can share
   * it, and the content is part of the version.
   */
  state(row: R): string;
}

interface Subscriber<E> {
  readonly outlet: Outlet<E>;
  /** Database time once its LISTEN was in place; unset while starting. */
  startedAt: Date | undefined;
  /** The delivery counter when it joined: later deliveries reached it. */
  readonly joined: number;
}

interface Delivered {
  version: string;
  /** Database time of that version (updated_at, or deleted_at), in ms. */
  at: number;
  /** The delivery counter at its last delivery. */
  delivery: number;
}

interface Hint {
  op: RowOp;
  id: string;
}

/**
 * Changes committed just before the listener lost its connection may carry a
 * now() a little older than its last heartbeat (now() is transaction start).
 */
export const CATCH_UP_MARGIN_MS = 5000;

/** Ids re-read per query. */
const BATCH = 1000;

export class ChangeFeed<R extends ChangedRow, E> implements Feed {
  private readonly roster: SubscriberRoster<Subscriber<E>>;
  private pending: Hint[] = [];
  private catchUpSince: Date | undefined;
  private readonly delivered = new Map<string, Delivered>();
  private deliveries = 0;
  /** The listener's healthy time at the last forget(): it runs once per heartbeat at most. */
  private forgotAt = 0;

  constructor(
    private readonly context: FeedContext,
    /** Database time up to which the listener is known to have heard everything (undefined: not yet). */
    private readonly healthyAt: () => Date | undefined,
    private readonly source: ChangeSource<R, E>,
  ) {
    this.roster = new SubscriberRoster(context.requestFlush);
  }

  get size(): number {
    return this.roster.size;
  }

  get buffered(): number {
    return this.roster.buffered;
  }

  add(outlet: Outlet<E>): { start(): void; remove(): void } {
    const sub: Subscriber<E> = { outlet, startedAt: undefined, joined: this.deliveries };
    return this.roster.add(sub);
  }

  /** A wake-up: the row `id` was inserted, updated or deleted. */
  hintRow(op: RowOp, id: string): void {
    this.pending.push({ op, id });
    this.context.requestFlush();
  }

  reconnected(info: ReconnectInfo): void {
    if (this.catchUpSince === undefined || info.since < this.catchUpSince) this.catchUpSince = info.since;
  }

  async flush(): Promise<void> {
    if (this.roster.size === 0) {
      this.pending = [];
      this.catchUpSince = undefined;
      return;
    }
    await this.startPending();
    if (this.catchUpSince !== undefined) {
      await this.catchUp(this.catchUpSince);
      this.catchUpSince = undefined;
    }
    while (this.pending.length > 0) {
      const batch = this.pending.slice(0, BATCH);
      await this.reread(batch);
      // Only once delivered: a failed re-read stays pending and the retry reads it again.
      this.pending.splice(0, batch.length);
    }
    this.forget();
  }

  /** One database time for every subscriber waiting to start: from then on no commit is missed. */
  private async startPending(): Promise<void> {
    const batch = this.roster.waiting();
    if (batch.length === 0) return;
    const [{ now }] = await this.context.db.$queryRaw<[{ now: Date }]>`SELECT now() AS now`;
    this.roster.started(batch);
    for (const sub of batch) {
      sub.startedAt = now;
      this.context.established();
    }
  }

  /** The hinted rows and tombstones, read in one query each, delivered in the order the hints came. */
  private async reread(batch: readonly Hint[]): Promise<void> {
    const live = [...new Set(batch.filter((hint) => hint.op !== "DELETE").map((hint) => hint.id))];
    const gone = [...new Set(batch.filter((hint) => hint.op === "DELETE").map((hint) => hint.id))];
    const [rows, tombstones] = await Promise.all([
      live.length === 0 ? [] : this.source.read(live),
      gone.length === 0 ? [] : this.source.readGone(gone),
    ]);
    const rowById = new Map(rows.map((row) => [row.id, row]));
    const tombstoneById = new Map(tombstones.map((tombstone) => [tombstone.id, tombstone]));
    for (const hint of batch) {
      if (hint.op === "DELETE") {
        // A tombstone of another owner, or one already purged: nothing this user may see.
        const tombstone = tombstoneById.get(hint.id);
        if (tombstone) this.publish(tombstone.id, "DELETED", tombstone.last, tombstone.deletedAt);
      } else {
        // Gone already: its DELETE hint follows and says so.
        const row = rowById.get(hint.id);
        if (row) this.publish(row.id, hint.op === "INSERT" ? "CREATED" : "UPDATED", row, row.updatedAt);
      }
    }
  }

  /** A live change goes to every subscriber, unless this very version went out already. */
  private publish(id: string, kind: ChangeKind, row: R | null, at: Date): void {
    const version = this.versionOf(kind, row);
    if (this.delivered.get(id)?.version === version) return;
    this.remember(id, version, at);
    const event = this.source.event(kind, id, row);
    for (const sub of this.roster.all) sub.outlet.push(event);
    // `at` is the row's database time (the writing transaction's now()): commit to delivery, about.
    if (this.roster.size > 0) this.context.delivered?.(this.source.name, at);
  }

  private remember(id: string, version: string, at: Date): void {
    this.deliveries += 1;
    this.delivered.set(id, { version, at: at.getTime(), delivery: this.deliveries });
  }

  /**
   * After a listener outage: everything committed meanwhile, from the database,
   * one event per row with its latest state. Every instant compared here is
   * the database's (the listener's and the subscriber's now(), rows stamped by
   * defaults and triggers), never this process's clock, which may be off by any amount.
   */
  private async catchUp(since: Date): Promise<void> {
    const started = [...this.roster.all].filter((sub): sub is Subscriber<E> & { startedAt: Date } => sub.startedAt !== undefined);
    if (started.length === 0) return;
    const earliest = Math.min(...started.map((sub) => sub.startedAt.getTime()));
    const from = new Date(Math.max(since.getTime(), earliest) - CATCH_UP_MARGIN_MS);
    const [changed, deleted] = await Promise.all([this.source.changedSince(from), this.source.deletedSince(from)]);
    for (const row of changed) this.catchUpRow(started, row);
    for (const tombstone of deleted) {
      const seen = this.delivered.get(tombstone.id);
      const version = this.versionOf("DELETED", tombstone.last);
      // Deleted before a subscriber started: not a change it missed.
      const owed = started.filter((sub) => tombstone.deletedAt >= sub.startedAt && !(seen?.version === version && seen.delivery > sub.joined));
      if (owed.length === 0) continue;
      const event = this.source.event("DELETED", tombstone.id, tombstone.last);
      for (const sub of owed) sub.outlet.push(event);
      this.remember(tombstone.id, version, tombstone.deletedAt);
    }
  }

  /** One row changed during an outage, to each started subscriber that has not had this version. */
  private catchUpRow(started: readonly (Subscriber<E> & { startedAt: Date })[], row: R): void {
    const seen = this.delivered.get(row.id);
    const version = this.versionOf("UPDATED", row);
    // Changed before a subscriber started is not a change it missed.
    const owed = started.filter((sub) => row.updatedAt >= sub.startedAt && !(seen?.version === version && seen.delivery > sub.joined));
    if (owed.length === 0) return;
    const events = new Map<ChangeKind, E>();
    for (const sub of owed) {
      // CREATED only for a row created since this subscriber started that it has not seen yet.
      const kind = row.createdAt >= sub.startedAt && !(seen !== undefined && seen.delivery > sub.joined) ? "CREATED" : "UPDATED";
      let event = events.get(kind);
      if (event === undefined) {
        event = this.source.event(kind, row.id, row);
        events.set(kind, event);
      }
      sub.outlet.push(event);
    }
    this.remember(row.id, version, row.updatedAt);
  }

  /**
   * Forgets versions no catch-up can read again: a catch-up reads from the
   * listener's last healthy moment (minus a margin) or later, and that moment
   * only moves forward.
   */
  private forget(): void {
    // A catch-up still to run reads from before the outage, while the healthy time has
    // jumped to after it (a reconnect during this flush): keep every version until it has run.
    if (this.catchUpSince !== undefined) return;
    const healthy = this.healthyAt()?.getTime();
    if (healthy === undefined || healthy === this.forgotAt) return;
    this.forgotAt = healthy;
    const horizon = healthy - 2 * CATCH_UP_MARGIN_MS;
    for (const [id, delivered] of this.delivered) {
      if (delivered.at < horizon) this.delivered.delete(id);
    }
  }

  /** A deletion is its own version; a live row's is its content. */
  private versionOf(kind: ChangeKind, row: R | null): string {
    return `${kind === "DELETED" ? "deleted" : "live"}:${row ? this.source.state(row) : ""}`;
  }
}
