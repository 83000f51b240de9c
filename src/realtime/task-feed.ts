import type { DeletedTask, Task } from "../generated/prisma/client.js";
import { SubscriberRoster, type Feed, type FeedContext } from "./feed.js";
import type { ReconnectInfo } from "./transport.js";
import type { TaskNotification, TaskOp } from "./protocol.js";
import type { Outlet } from "./subscriber.js";

/**
 * taskChanged for one user. Hints that arrive together (a burst of inserts
 * in one transaction) are re-read together: one query for the tasks, one for
 * the tombstones of deleted ones, whatever their number. Every event object
 * goes to every subscriber that is owed it, the same object to all.
 *
 * What was delivered is remembered per task, not per subscriber (the version
 * of its last delivery, with a delivery counter that tells which subscribers
 * joined after it), and forgotten once no catch-up can read that version again.
 */

export type TaskChangeKind = "CREATED" | "UPDATED" | "DELETED";

export interface TaskChangeEvent {
  kind: TaskChangeKind;
  taskId: string;
  /**
   * The task now; for DELETED, its last state. Its lastEventId names the
   * change that made it so (the cause), read in the same row, so the two
   * always agree however many changes the feed collapsed.
   */
  task: Task | null;
}

interface TaskSubscriber {
  readonly outlet: Outlet<TaskChangeEvent>;
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

/**
 * Changes committed just before the listener lost its connection may carry a
 * now() a little older than its last heartbeat (now() is transaction start).
 */
export const CATCH_UP_MARGIN_MS = 5000;

/** Ids re-read per query. */
const BATCH = 1000;

export class TaskFeed implements Feed {
  private readonly roster: SubscriberRoster<TaskSubscriber>;
  private pending: TaskNotification[] = [];
  private catchUpSince: Date | undefined;
  private readonly delivered = new Map<string, Delivered>();
  private deliveries = 0;
  /** The listener's healthy time at the last forget(): it runs once per heartbeat at most. */
  private forgotAt = 0;

  constructor(
    private readonly context: FeedContext,
    /** Database time up to which the listener is known to have heard everything (undefined: not yet). */
    private readonly healthyAt: () => Date | undefined,
  ) {
    this.roster = new SubscriberRoster(context.requestFlush);
  }

  get size(): number {
    return this.roster.size;
  }

  get buffered(): number {
    return this.roster.buffered;
  }

  add(outlet: Outlet<TaskChangeEvent>): { start(): void; remove(): void } {
    const sub: TaskSubscriber = { outlet, startedAt: undefined, joined: this.deliveries };
    return this.roster.add(sub);
  }

  hint(note: TaskNotification): void {
    this.pending.push(note);
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

  /** The hinted tasks and tombstones, read in one query each, delivered in the order the hints came. */
  private async reread(batch: readonly TaskNotification[]): Promise<void> {
    const live = [...new Set(batch.filter((note) => note.op !== "DELETE").map((note) => note.taskId))];
    const gone = [...new Set(batch.filter((note) => note.op === "DELETE").map((note) => note.taskId))];
    const { db, userId } = this.context;
    const [tasks, tombstones] = await Promise.all([
      live.length === 0 ? [] : db.task.findMany({ where: { userId, id: { in: live } } }),
      gone.length === 0 ? [] : db.deletedTask.findMany({ where: { userId, id: { in: gone } } }),
    ]);
    const taskById = new Map(tasks.map((task) => [task.id, task]));
    const tombstoneById = new Map(tombstones.map((tombstone) => [tombstone.id, tombstone]));
    for (const note of batch) {
      if (note.op === "DELETE") {
        // A tombstone of another owner, or one already purged: nothing this user may see.
        const tombstone = tombstoneById.get(note.taskId);
        if (tombstone) this.publish(deletedEvent(tombstone), tombstone.deletedAt);
      } else {
        // Gone already: its DELETE hint follows and says so.
        const task = taskById.get(note.taskId);
        if (task) this.publish({ kind: kindOf(note.op), taskId: task.id, task }, task.updatedAt);
      }
    }
  }

  /** A live change goes to every subscriber, unless this very version went out already. */
  private publish(event: TaskChangeEvent, at: Date): void {
    const version = versionOf(event);
    if (this.delivered.get(event.taskId)?.version === version) return;
    this.remember(event.taskId, version, at);
    let pushed = 0;
    for (const sub of this.roster.all) {
      sub.outlet.push(event);
      pushed += 1;
    }
    // `at` is the row's database time (the writing transaction's now()): commit to delivery, about.
    if (pushed > 0) this.context.delivered?.(at);
  }

  private remember(taskId: string, version: string, at: Date): void {
    this.deliveries += 1;
    this.delivered.set(taskId, { version, at: at.getTime(), delivery: this.deliveries });
  }

  /**
   * After a listener outage: everything committed meanwhile, from the database,
   * one event per task with its latest state. Every instant compared here is
   * the database's (the listener's and the subscriber's now(), rows stamped by
   * defaults and triggers), never this process's clock, which may be off by any amount.
   */
  private async catchUp(since: Date): Promise<void> {
    const started = [...this.roster.all].filter((sub): sub is TaskSubscriber & { startedAt: Date } => sub.startedAt !== undefined);
    if (started.length === 0) return;
    const earliest = Math.min(...started.map((sub) => sub.startedAt.getTime()));
    const from = new Date(Math.max(since.getTime(), earliest) - CATCH_UP_MARGIN_MS);
    const { db, userId } = this.context;
    const [changed, deleted] = await Promise.all([
      db.task.findMany({ where: { userId, updatedAt: { gte: from } }, orderBy: { updatedAt: "asc" } }),
      db.deletedTask.findMany({ where: { userId, deletedAt: { gte: from } }, orderBy: { deletedAt: "asc" } }),
    ]);
    for (const task of changed) {
      const seen = this.delivered.get(task.id);
      const version = versionOf({ kind: "UPDATED", taskId: task.id, task });
      // Changed before a subscriber started is not a change it missed.
      const owed = started.filter((sub) => task.updatedAt >= sub.startedAt && !(seen?.version === version && seen.delivery > sub.joined));
      if (owed.length === 0) continue;
      const events = new Map<TaskChangeKind, TaskChangeEvent>();
      for (const sub of owed) {
        // CREATED only for a task created since this subscriber started that it has not seen yet.
        const kind = task.createdAt >= sub.startedAt && !(seen !== undefined && seen.delivery > sub.joined) ? "CREATED" : "UPDATED";
        let event = events.get(kind);
        if (!event) {
          event = { kind, taskId: task.id, task };
          events.set(kind, event);
        }
        sub.outlet.push(event);
      }
      this.remember(task.id, version, task.updatedAt);
    }
    for (const tombstone of deleted) {
      const event = deletedEvent(tombstone);
      const seen = this.delivered.get(tombstone.id);
      const version = versionOf(event);
      // Deleted before a subscriber started: not a change it missed.
      const owed = started.filter((sub) => tombstone.deletedAt >= sub.startedAt && !(seen?.version === version && seen.delivery > sub.joined));
      if (owed.length === 0) continue;
      for (const sub of owed) sub.outlet.push(event);
      this.remember(tombstone.id, version, tombstone.deletedAt);
    }
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
    for (const [taskId, delivered] of this.delivered) {
      if (delivered.at < horizon) this.delivered.delete(taskId);
    }
  }
}

function kindOf(op: TaskOp): TaskChangeKind {
  return op === "INSERT" ? "CREATED" : "UPDATED";
}

function deletedEvent(tombstone: DeletedTask): TaskChangeEvent {
  const { deletedAt: _deletedAt, ...task } = tombstone;
  return { kind: "DELETED", taskId: task.id, task };
}

/**
 * updated_at is the transaction's start at millisecond precision: two commits
 * can share it, so the content is part of the version, and so is the event
 * that made it (its cause, which the database sets with every version).
 */
function versionOf(event: TaskChangeEvent): string {
  const task = event.task;
  const state = task ? JSON.stringify([task.updatedAt.toISOString(), task.title, task.description, task.completed, task.lastEventId]) : "";
  return `${event.kind === "DELETED" ? "deleted" : "live"}:${state}`;
}
