import { Backoff, type BackoffPolicy } from "../lib/backoff.js";
import type { Db } from "../db/client.js";
import { AppError, ErrorCode } from "../lib/errors.js";
import type { Message } from "../generated/prisma/client.js";
import type { Logger } from "../lib/logger.js";
import { Admission } from "./admission.js";
import type { ChangeSubscription, DeliveryObserver, Feed, FeedLimits } from "./feed.js";
import { MessageFeed, type MessageSubscription } from "./message-feed.js";
import { userChannel, type Notification } from "./protocol.js";
import type { Outlet, StreamEnd } from "./subscriber.js";
import { TaskFeed, type TaskChangeEvent } from "./task-feed.js";
import { ConversationChangeFeed, type ConversationChangeEvent } from "./conversation-change-feed.js";
import type { RealtimeTransport, ReconnectInfo } from "./transport.js";

/**
 * Fans the transport's wake-ups (./transport.ts: LISTEN, or NATS) out to this
 * process's subscribers, by user. A notification is only a hint (ids, never data): the feeds re-read
 * the rows, scoped to the user, so what is pushed is what was committed and
 * authorization applies again. The hub only schedules: each user's feeds
 * flush one at a time, in order, and a flush that fails is retried with
 * capped backoff until it succeeds or the user's last subscriber leaves.
 * Every subscription is admitted first (./admission.ts): the hub's
 * Admission is the one the stream feed (messageStream) shares.
 */

export { StreamEnd } from "./subscriber.js";
export type { MessageSubscription } from "./message-feed.js";
export type { TaskChangeEvent, TaskChangeKind } from "./task-feed.js";
export type { ConversationChangeEvent, ConversationChangeKind } from "./conversation-change-feed.js";

export interface RealtimeOptions {
  /**
   * Subscriptions one user may have open on this instance (SUBSCRIPTIONS_PER_USER), of every kind
   * together (the hub's Admission, shared with messageStream); one more is RATE_LIMITED.
   */
  subscriptionsPerUser?: number;
  /** Events that may wait for one subscriber; one more ends it with SUBSCRIPTION_OVERFLOW. */
  bufferLimit?: number;
  /** Rows per query when replaying or re-reading messages. */
  pageSize?: number;
  /** Waits between attempts of a failed re-read. */
  retry?: BackoffPolicy;
}

export const DEFAULT_REALTIME_OPTIONS: Required<RealtimeOptions> = {
  subscriptionsPerUser: 50,
  bufferLimit: 1000,
  pageSize: 500,
  retry: { initialMs: 100, maxMs: 5000 },
};

/** One user's feeds, their LISTEN and the order their work runs in. */
class UserHub {
  readonly messages: MessageFeed;
  readonly tasks: TaskFeed;
  readonly conversations: ConversationChangeFeed;
  private chain: Promise<void> = Promise.resolve();
  private flushQueued = false;
  private readonly backoff: Backoff;
  private retryTimer: NodeJS.Timeout | undefined;
  private unlisten: Promise<() => Promise<void>> | undefined;
  private disposed = false;

  constructor(
    private readonly userId: string,
    private readonly transport: RealtimeTransport,
    private readonly logger: Logger,
    db: Db,
    limits: FeedLimits,
    retry: BackoffPolicy,
    established: () => void,
    observer: DeliveryObserver | undefined,
  ) {
    const delivered = observer && ((kind: ChangeSubscription, committedAt: Date) => observer.delivered(kind, committedAt));
    const context = { userId, db, logger, established, delivered, requestFlush: () => this.requestFlush() };
    this.messages = new MessageFeed(context, limits, retry);
    this.tasks = new TaskFeed(context, () => transport.healthyAt);
    this.conversations = new ConversationChangeFeed(context, () => transport.healthyAt);
    this.backoff = new Backoff(retry);
  }

  get size(): number {
    return this.feeds.reduce((sum, feed) => sum + feed.size, 0);
  }

  get buffered(): number {
    return this.feeds.reduce((sum, feed) => sum + feed.buffered, 0);
  }

  private get feeds(): Feed[] {
    return [this.messages, this.tasks, this.conversations];
  }

  /** Resolves once this user's channel is subscribed to (at once while the transport is down: catch-up covers that). */
  ensureListening(): Promise<unknown> {
    this.unlisten ??= this.transport.listen(userChannel(this.userId), (notification) => this.onNotification(notification));
    return this.unlisten;
  }

  reconnected(info: ReconnectInfo): void {
    this.messages.reconnected();
    this.tasks.reconnected(info);
    this.conversations.reconnected(info);
    this.requestFlush();
  }

  /** Queues one flush of the feeds behind the user's earlier work; a pending retry covers it. */
  requestFlush(): void {
    if (this.flushQueued || this.retryTimer !== undefined || this.disposed) return;
    this.flushQueued = true;
    this.chain = this.chain.then(() => this.flush());
  }

  async dispose(): Promise<void> {
    this.disposed = true;
    clearTimeout(this.retryTimer);
    const unlisten = await this.unlisten;
    await unlisten?.();
  }

  private onNotification(notification: Notification): void {
    // Other kinds (stream, turn) are the stream feed's and the assistant's.
    if (notification.kind === "message") this.messages.hint(notification);
    else if (notification.kind === "task") this.tasks.hint(notification);
    else if (notification.kind === "conversation") this.conversations.hint(notification);
  }

  private async flush(): Promise<void> {
    this.flushQueued = false;
    let failure: unknown;
    for (const feed of this.feeds) {
      try {
        await feed.flush();
      } catch (error) {
        failure ??= error;
      }
    }
    if (failure === undefined) {
      this.backoff.reset();
      return;
    }
    if (this.disposed) return;
    const delayMs = this.backoff.next();
    this.logger.warn({ err: failure, attempt: this.backoff.attempts, delayMs: Math.round(delayMs) }, "realtime re-read failed; retrying");
    this.retryTimer = setTimeout(() => {
      this.retryTimer = undefined;
      this.requestFlush();
    }, delayMs);
    this.retryTimer.unref();
  }
}

export class RealtimeHub {
  /** The per-user cap, shared with every other kind of subscription on this instance. */
  readonly admission: Admission;
  private readonly users = new Map<string, UserHub>();
  private readonly options: Required<RealtimeOptions>;
  private established = 0;

  constructor(
    private readonly db: Db,
    private readonly transport: RealtimeTransport,
    private readonly logger: Logger,
    options: RealtimeOptions = {},
    /** Told of deliveries (the notification lag metric); none without metrics. */
    private readonly observer?: DeliveryObserver,
  ) {
    this.options = { ...DEFAULT_REALTIME_OPTIONS, ...options };
    this.admission = new Admission(this.options.subscriptionsPerUser);
    transport.on("reconnected", (info) => {
      for (const hub of this.users.values()) hub.reconnected(info);
    });
  }

  /** Subscribers currently open in this process. */
  get subscriberCount(): number {
    let count = 0;
    for (const hub of this.users.values()) count += hub.size;
    return count;
  }

  /** Events waiting in subscribers' buffers, in all (each subscriber holds at most bufferLimit). */
  get bufferedEvents(): number {
    let count = 0;
    for (const hub of this.users.values()) count += hub.buffered;
    return count;
  }

  /**
   * Subscriptions ever started whose LISTEN and starting point were in place:
   * from then on none of their events can be missed.
   */
  get establishedCount(): number {
    return this.established;
  }

  /**
   * New messages of one conversation (or all of the user's). The LISTEN is in
   * place before the starting point is read, and both go through the user's
   * order, so nothing committed after the starting point is missed and nothing
   * is delivered twice. With afterSeq, the stored messages after it come
   * first, a page at a time, as fast as the subscriber takes them.
   */
  messages(userId: string, options: MessageSubscription): AsyncIterableIterator<Message | StreamEnd> {
    const limit = this.options.bufferLimit;
    const overflow = () =>
      new AppError(
        ErrorCode.SUBSCRIPTION_OVERFLOW,
        `messageAdded fell more than ${limit} messages behind and was ended; subscribe again with afterSeq set to the last seq you received`,
        { extensions: { limit } },
      );
    return this.admission.stream<Message>(userId, { limit, overflowError: overflow, kind: "messageAdded" }, async (outlet) => {
      const hub = this.userHub(userId);
      const sub = hub.messages.add(outlet, options);
      outlet.onClose(() => {
        sub.remove();
        this.release(userId, hub);
      });
      await hub.ensureListening();
      sub.start();
    });
  }

  /** Changes to the user's tasks, whoever made them. */
  taskChanges(userId: string): AsyncIterableIterator<TaskChangeEvent | StreamEnd> {
    return this.changes(userId, "taskChanged", "re-read your tasks", (hub) => hub.tasks);
  }

  /** The user's conversations created, changed (renamed, a new message) or deleted, whoever did it. */
  conversationChanges(userId: string): AsyncIterableIterator<ConversationChangeEvent | StreamEnd> {
    return this.changes(userId, "conversationChanged", "re-read your conversations", (hub) => hub.conversations);
  }

  /** A change feed's subscription, admitted like every other, LISTENing before it starts. */
  private changes<E>(
    userId: string,
    name: ChangeSubscription,
    advice: string,
    feedOf: (hub: UserHub) => { add(outlet: Outlet<E>): { start(): void; remove(): void } },
  ): AsyncIterableIterator<E | StreamEnd> {
    const limit = this.options.bufferLimit;
    const overflow = () =>
      new AppError(ErrorCode.SUBSCRIPTION_OVERFLOW, `${name} fell more than ${limit} events behind and was ended; subscribe again and ${advice}`, {
        extensions: { limit },
      });
    return this.admission.stream<E>(userId, { limit, overflowError: overflow, kind: name }, async (outlet) => {
      const hub = this.userHub(userId);
      const sub = feedOf(hub).add(outlet);
      outlet.onClose(() => {
        sub.remove();
        this.release(userId, hub);
      });
      await hub.ensureListening();
      sub.start();
    });
  }

  /** The user's hub, made on their first subscription (admitted already). */
  private userHub(userId: string): UserHub {
    const existing = this.users.get(userId);
    if (existing) return existing;
    const hub = new UserHub(
      userId,
      this.transport,
      this.logger,
      this.db,
      { bufferLimit: this.options.bufferLimit, pageSize: this.options.pageSize },
      this.options.retry,
      () => {
        this.established += 1;
      },
      this.observer,
    );
    this.users.set(userId, hub);
    return hub;
  }

  /** Drops the user's hub (and its LISTEN, and any pending retry) once their last subscriber has left. */
  private release(userId: string, hub: UserHub): void {
    if (hub.size > 0) return;
    if (this.users.get(userId) === hub) this.users.delete(userId);
    hub.dispose().catch((error: unknown) => this.logger.warn({ err: error }, "releasing a user's LISTEN failed"));
  }
}
