import type { Db } from "../db/client.js";
import type { Turn } from "../generated/prisma/client.js";
import { Backoff } from "../lib/backoff.js";
import type { Logger } from "../lib/logger.js";
import type { Admission } from "./admission.js";
import { ConversationFeed, type ConversationFollower } from "./conversation-feed.js";
import type { Notification } from "./protocol.js";
import type { Outlet } from "./subscriber.js";
import type { RealtimeTransport } from "./transport.js";

/**
 * turnUpdated: the turns of one conversation, each time one starts, changes
 * status (RUNNING, REQUIRES_ACTION, each end) or gets a decision on one of its
 * held calls, whichever instance wrote it. The {k: 'turn'} notification is a
 * hint; the row, re-read under the user's scope, is what is sent, and only
 * when it differs from what this subscriber last got of that turn: merged or
 * repeated notifications send nothing twice. After the LISTEN connection was
 * away, the conversation's recent turns are re-read, so a pause made meanwhile
 * is still delivered.
 */

/** Turns remembered per subscriber (what it was last sent of each). */
const REMEMBERED = 64;
/** Turns re-read per subscriber after a LISTEN outage: the newest ones, where anything can have changed. */
const CATCH_UP_TURNS = 20;
/** Re-reads that failed are tried again on this schedule, while the subscriber is open. */
const RETRY = { initialMs: 100, maxMs: 5_000 };

/** What a subscriber has been sent of a turn: a change to any of these is a new event. */
function stateOf(turn: Turn): string {
  return [turn.status, turn.cancelRequestedAt?.getTime() ?? "", turn.lastDecisionAt?.getTime() ?? ""].join("|");
}

class ConversationTurns implements ConversationFollower {
  private readonly sent = new Map<string, string>();
  private chain: Promise<void> = Promise.resolve();
  private closed = false;
  /** Turns whose re-read failed: each is read again until it succeeds (at most REMEMBERED, the oldest dropped). */
  private readonly unread = new Set<string>();
  private readonly backoff = new Backoff(RETRY);
  private retry: NodeJS.Timeout | undefined;
  private catchUpOwed = false;

  constructor(
    private readonly db: Db,
    private readonly userId: string,
    private readonly conversationId: string,
    private readonly logger: Logger,
    private readonly outlet: Outlet<Turn>,
  ) {}

  onNotification(note: Notification): void {
    if (this.closed || note.kind !== "turn" || note.conversationId !== this.conversationId) return;
    this.readTurns([note.turnId]);
  }

  /**
   * Re-reads these turns; a read that fails keeps them in `unread`, tried
   * again with backoff, because the change it missed may be the turn's last
   * (no later notification would come to read it).
   */
  private readTurns(ids: readonly string[]): void {
    this.enqueue(async () => {
      try {
        const turns = await this.db.turn.findMany({ where: { id: { in: [...ids] }, userId: this.userId, conversationId: this.conversationId } });
        for (const id of ids) this.unread.delete(id);
        this.backoff.reset();
        for (const turn of turns) this.deliver(turn);
      } catch (error) {
        this.keepUnread(ids);
        throw error;
      }
    });
  }

  private keepUnread(ids: readonly string[]): void {
    for (const id of ids) {
      this.unread.delete(id);
      this.unread.add(id);
    }
    while (this.unread.size > REMEMBERED) this.unread.delete(this.unread.values().next().value as string);
    this.scheduleRetry();
  }

  /** One timer for every read owed; the delay grows until a read succeeds. */
  private scheduleRetry(): void {
    if (this.closed || this.retry !== undefined) return;
    this.retry = setTimeout(() => {
      this.retry = undefined;
      if (this.closed) return;
      if (this.catchUpOwed) this.catchUp();
      if (this.unread.size > 0) this.readTurns([...this.unread]);
    }, this.backoff.next());
    this.retry.unref();
  }

  /** The LISTEN connection was away: whatever changed meanwhile, from the rows (tried again, as a failed re-read is, until it succeeds). */
  catchUp(): void {
    this.enqueue(async () => {
      this.catchUpOwed = false;
      try {
        const turns = await this.db.turn.findMany({
          where: { userId: this.userId, conversationId: this.conversationId },
          orderBy: { startedAt: "desc" },
          take: CATCH_UP_TURNS,
        });
        // Oldest first; a turn never sent and long over is history, not news.
        for (const turn of turns.reverse()) {
          if (this.sent.has(turn.id) || turn.status === "RUNNING" || turn.status === "REQUIRES_ACTION") this.deliver(turn);
        }
      } catch (error) {
        this.catchUpOwed = true;
        this.scheduleRetry();
        throw error;
      }
    });
  }

  async close(unlisten: (() => Promise<void>) | undefined): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearTimeout(this.retry);
    await unlisten?.().catch((error: unknown) => this.logger.warn({ err: error }, "could not stop listening for turns"));
  }

  /** One read at a time, in notification order; a failed read is logged (and its turns retried, see readTurns). */
  private enqueue(work: () => Promise<void>): void {
    this.chain = this.chain.then(work).catch((error: unknown) => {
      this.logger.warn({ err: error }, "re-reading a turn failed; it is read again shortly");
    });
  }

  private deliver(turn: Turn): void {
    const state = stateOf(turn);
    if (this.sent.get(turn.id) === state) return;
    this.sent.delete(turn.id);
    this.sent.set(turn.id, state);
    if (this.sent.size > REMEMBERED) this.sent.delete(this.sent.keys().next().value as string);
    this.outlet.push(turn);
  }
}

/** turnUpdated subscriptions, each following one conversation's turns. */
export class TurnFeed extends ConversationFeed<Turn> {
  constructor(db: Db, listener: Pick<RealtimeTransport, "listen">, logger: Logger, admission: Admission, bufferLimit = 1000) {
    super(listener, admission, {
      name: "turnUpdated",
      overflowAdvice: " and re-read the turn",
      bufferLimit,
      follower: (userId, conversationId, outlet) => new ConversationTurns(db, userId, conversationId, logger, outlet),
    });
  }
}
