import { createHash } from "node:crypto";
import type { Db } from "../db/client.js";
import type { Message, Task } from "../generated/prisma/client.js";
import type { Logger } from "../logger.js";
import type { PgListener, ReconnectInfo } from "./listener.js";
import { SubscriptionQueue } from "./queue.js";
import { isSettled } from "./settled.js";

/**
 * Fans the listener's notifications out to this process's subscribers, by
 * user. A notification is only a hint (ids, never data): rows are re-read
 * from the database, scoped to the user, so what is pushed is what was
 * committed and authorization applies again. Each user's work runs in one
 * serial chain, so seq high-water marks make delivery gap-free and duplicate-free.
 */

export type TaskChangeKind = "CREATED" | "UPDATED" | "DELETED";

export interface TaskChangeEvent {
  kind: TaskChangeKind;
  taskId: string;
  /** The task now; for DELETED, its last state. */
  task: Task | null;
}

type Notification =
  | { k: "message"; i: string; c: string; s: number }
  | { k: "task"; op: "INSERT" | "UPDATE" | "DELETE"; i: string };

/** Must match todo_realtime_channel() in the realtime migration. */
export function userChannel(userId: string): string {
  return `todo_u_${createHash("md5").update(userId, "utf8").digest("hex")}`;
}

/**
 * Changes committed just before the listener lost its connection may carry a
 * now() a little older than its last heartbeat (now() is transaction start).
 */
const CATCH_UP_MARGIN_MS = 5000;

interface MessageSubscriber {
  conversationId: string | undefined;
  /** Set once its starting point is known; until then notifications pass it by (its start reads past them). */
  ready: boolean;
  /** Highest seq delivered, per conversation. */
  delivered: Map<string, number>;
  queue: SubscriptionQueue<Message>;
}

interface TaskSubscriber {
  startedAt: Date;
  /** Last state delivered per task, so catch-up never repeats an event. */
  delivered: Map<string, string>;
  queue: SubscriptionQueue<TaskChangeEvent>;
}

class UserHub {
  readonly messageSubscribers = new Set<MessageSubscriber>();
  readonly taskSubscribers = new Set<TaskSubscriber>();
  private chain: Promise<void> = Promise.resolve();
  private unlisten: Promise<() => Promise<void>> | undefined;

  constructor(
    private readonly userId: string,
    private readonly db: Db,
    private readonly listener: PgListener,
    private readonly logger: Logger,
    private readonly onEmpty: () => void,
  ) {}

  get empty(): boolean {
    return this.messageSubscribers.size === 0 && this.taskSubscribers.size === 0;
  }

  /** Resolves once this user's channel is LISTENed to. */
  ensureListening(): Promise<unknown> {
    this.unlisten ??= this.listener.listen(userChannel(this.userId), (payload) => this.onNotification(payload));
    return this.unlisten;
  }

  async release(): Promise<void> {
    if (!this.empty) return;
    this.onEmpty();
    const unlisten = await this.unlisten;
    this.unlisten = undefined;
    await unlisten?.();
  }

  /** Runs work after everything queued before it for this user. */
  run(work: () => Promise<void>): Promise<void> {
    const next = this.chain.then(work).catch((error: unknown) => {
      this.logger.error({ err: error }, "realtime delivery failed; the next event or reconnect retries");
    });
    this.chain = next;
    return next;
  }

  private onNotification(raw: string): void {
    let note: Notification;
    try {
      note = JSON.parse(raw) as Notification;
    } catch {
      this.logger.warn("ignoring a malformed notification");
      return;
    }
    if (note.k === "message") void this.run(() => this.syncConversation(note.c, note.s));
    else if (note.k === "task") void this.run(() => this.deliverTask(note.i, note.op));
  }

  /** Delivers every committed message of the conversation above each subscriber's high-water mark. */
  async syncConversation(conversationId: string, hintSeq?: number): Promise<void> {
    const interested = [...this.messageSubscribers].filter(
      (sub) =>
        sub.ready && !sub.queue.closed && (sub.conversationId === undefined || sub.conversationId === conversationId),
    );
    if (interested.length === 0) return;
    const floor = Math.min(...interested.map((sub) => sub.delivered.get(conversationId) ?? 0));
    if (hintSeq !== undefined && hintSeq <= floor) return;
    const rows = await this.db.message.findMany({
      where: { userId: this.userId, conversationId, seq: { gt: floor } },
      orderBy: { seq: "asc" },
    });
    for (const sub of interested) deliverMessages(sub, conversationId, rows);
  }

  private async deliverTask(taskId: string, op: "INSERT" | "UPDATE" | "DELETE"): Promise<void> {
    if (this.taskSubscribers.size === 0) return;
    let event: TaskChangeEvent;
    if (op === "DELETE") {
      const last = await this.db.deletedTask.findFirst({ where: { id: taskId, userId: this.userId } });
      // A tombstone of another owner, or one already purged: nothing this user may see.
      if (!last) return;
      const { deletedAt: _deletedAt, ...task } = last;
      event = { kind: "DELETED", taskId, task };
    } else {
      const task = await this.db.task.findFirst({ where: { id: taskId, userId: this.userId } });
      // Gone already: its DELETE notification follows and says so.
      if (!task) return;
      event = { kind: op === "INSERT" ? "CREATED" : "UPDATED", taskId, task };
    }
    for (const sub of this.taskSubscribers) deliverTaskEvent(sub, event);
  }

  /** The newest seq of each of the user's conversations (or of one). */
  lastSeqs(conversationId?: string): Promise<{ id: string; lastSeq: number }[]> {
    return this.db.conversation.findMany({
      where: { userId: this.userId, ...(conversationId === undefined ? {} : { id: conversationId }) },
      select: { id: true, lastSeq: true },
    });
  }

  /**
   * After a listener outage: everything committed meanwhile, from the database.
   * Every instant compared here is the database's (the listener's and the
   * subscriber's now(), rows stamped by defaults and triggers), never this
   * process's clock, which may be off by any amount.
   */
  async catchUp(info: ReconnectInfo): Promise<void> {
    if (this.messageSubscribers.size > 0) {
      for (const { id, lastSeq } of await this.lastSeqs()) {
        const behind = [...this.messageSubscribers].some(
          (sub) => (sub.conversationId === undefined || sub.conversationId === id) && (sub.delivered.get(id) ?? 0) < lastSeq,
        );
        if (behind) await this.syncConversation(id);
      }
    }
    if (this.taskSubscribers.size > 0) {
      const earliest = Math.min(...[...this.taskSubscribers].map((sub) => sub.startedAt.getTime()));
      const since = new Date(Math.max(info.since.getTime() - CATCH_UP_MARGIN_MS, earliest - CATCH_UP_MARGIN_MS));
      const [changed, deleted] = await Promise.all([
        this.db.task.findMany({ where: { userId: this.userId, updatedAt: { gte: since } }, orderBy: { updatedAt: "asc" } }),
        this.db.deletedTask.findMany({ where: { userId: this.userId, deletedAt: { gte: since } }, orderBy: { deletedAt: "asc" } }),
      ]);
      for (const sub of this.taskSubscribers) {
        for (const task of changed) {
          if (task.updatedAt < sub.startedAt) continue;
          // CREATED only for a task created since this subscriber started that it has not seen yet.
          const kind = task.createdAt >= sub.startedAt && !sub.delivered.has(task.id) ? "CREATED" : "UPDATED";
          deliverTaskEvent(sub, { kind, taskId: task.id, task });
        }
        for (const { deletedAt, ...task } of deleted) {
          // Deleted before this subscriber started: not a change it missed.
          if (deletedAt < sub.startedAt) continue;
          deliverTaskEvent(sub, { kind: "DELETED", taskId: task.id, task });
        }
      }
    }
  }
}

function deliverMessages(sub: MessageSubscriber, conversationId: string, rows: readonly Message[]): void {
  let high = sub.delivered.get(conversationId) ?? 0;
  for (const row of rows) {
    if (!isSettled(row)) break;
    if (row.seq <= high) continue;
    sub.queue.push(row);
    high = row.seq;
  }
  sub.delivered.set(conversationId, high);
}

function deliverTaskEvent(sub: TaskSubscriber, event: TaskChangeEvent): void {
  // updated_at is the transaction's start at millisecond precision: two commits
  // can share it, so the content is part of the version.
  const task = event.task;
  const state = task ? JSON.stringify([task.updatedAt.toISOString(), task.title, task.description, task.completed]) : "";
  const version = `${event.kind === "DELETED" ? "deleted" : "live"}:${state}`;
  if (sub.delivered.get(event.taskId) === version) return;
  sub.delivered.set(event.taskId, version);
  sub.queue.push(event);
}

export interface MessageSubscription {
  conversationId?: string | undefined;
  /** Replay persisted messages after this seq first (requires conversationId). */
  afterSeq?: number | undefined;
}

export class RealtimeHub {
  private readonly users = new Map<string, UserHub>();
  private established = 0;

  constructor(
    private readonly db: Db,
    private readonly listener: PgListener,
    private readonly logger: Logger,
  ) {
    listener.on("reconnected", (info) => {
      for (const hub of this.users.values()) void hub.run(() => hub.catchUp(info));
    });
  }

  /** Subscribers currently open in this process. */
  get subscriberCount(): number {
    let count = 0;
    for (const hub of this.users.values()) count += hub.messageSubscribers.size + hub.taskSubscribers.size;
    return count;
  }

  /**
   * Subscriptions ever started whose LISTEN (and, for messages, starting point)
   * was in place: from then on none of their events can be missed.
   */
  get establishedCount(): number {
    return this.established;
  }

  private hubFor(userId: string): UserHub {
    let hub = this.users.get(userId);
    if (!hub) {
      hub = new UserHub(userId, this.db, this.listener, this.logger, () => this.users.delete(userId));
      this.users.set(userId, hub);
    }
    return hub;
  }

  /**
   * New messages of one conversation (or all of the user's). The LISTEN is in
   * place before the starting point is read, and both go through the user's
   * serial chain, so nothing committed after the starting point is missed
   * and nothing is delivered twice.
   */
  async messages(userId: string, options: MessageSubscription): Promise<AsyncIterableIterator<Message>> {
    const hub = this.hubFor(userId);
    const sub: MessageSubscriber = {
      conversationId: options.conversationId,
      ready: false,
      delivered: new Map(),
      queue: new SubscriptionQueue<Message>(() => {
        hub.messageSubscribers.delete(sub);
        void hub.release();
      }),
    };
    hub.messageSubscribers.add(sub);
    await hub.ensureListening();
    void hub.run(async () => {
      const { conversationId, afterSeq } = options;
      if (conversationId === undefined) {
        for (const { id, lastSeq } of await hub.lastSeqs()) sub.delivered.set(id, lastSeq);
      } else {
        sub.delivered.set(conversationId, afterSeq ?? (await hub.lastSeqs(conversationId))[0]?.lastSeq ?? 0);
      }
      sub.ready = true;
      // Counted once the starting point is set: every later commit is delivered.
      this.established += 1;
      if (conversationId !== undefined && afterSeq !== undefined) await hub.syncConversation(conversationId);
    });
    return sub.queue;
  }

  /** Changes to the user's tasks, whoever made them. */
  async taskChanges(userId: string): Promise<AsyncIterableIterator<TaskChangeEvent>> {
    const [{ now }] = await this.db.$queryRaw<[{ now: Date }]>`SELECT now() AS now`;
    // Only after the await: the user's hub may have been released meanwhile, and a released hub gets no catch-up.
    const hub = this.hubFor(userId);
    const sub: TaskSubscriber = {
      startedAt: now,
      delivered: new Map(),
      queue: new SubscriptionQueue<TaskChangeEvent>(() => {
        hub.taskSubscribers.delete(sub);
        void hub.release();
      }),
    };
    hub.taskSubscribers.add(sub);
    await hub.ensureListening();
    this.established += 1;
    return sub.queue;
  }
}
