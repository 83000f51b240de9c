import type { Db } from "../db/client.js";
import type { Turn } from "../generated/prisma/client.js";
import { AppError, ErrorCode } from "../lib/errors.js";
import type { Logger } from "../lib/logger.js";
import type { Admission } from "./admission.js";
import type { PgListener } from "./listener.js";
import { userChannel, type Notification } from "./protocol.js";
import type { Outlet, StreamEnd } from "./subscriber.js";

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

/** What a subscriber has been sent of a turn: a change to any of these is a new event. */
function stateOf(turn: Turn): string {
  return [turn.status, turn.cancelRequestedAt?.getTime() ?? "", turn.lastDecisionAt?.getTime() ?? ""].join("|");
}

class ConversationTurns {
  private readonly sent = new Map<string, string>();
  private chain: Promise<void> = Promise.resolve();
  private closed = false;
  unlisten: (() => Promise<void>) | undefined;

  constructor(
    private readonly db: Db,
    private readonly userId: string,
    private readonly conversationId: string,
    private readonly logger: Logger,
    private readonly outlet: Outlet<Turn>,
  ) {}

  onNotification(note: Notification): void {
    if (this.closed || note.kind !== "turn" || note.conversationId !== this.conversationId) return;
    this.enqueue(async () => {
      const turn = await this.db.turn.findFirst({ where: { id: note.turnId, userId: this.userId, conversationId: this.conversationId } });
      if (turn) this.deliver(turn);
    });
  }

  /** The LISTEN connection was away: whatever changed meanwhile, from the rows. */
  catchUp(): void {
    this.enqueue(async () => {
      const turns = await this.db.turn.findMany({
        where: { userId: this.userId, conversationId: this.conversationId },
        orderBy: { startedAt: "desc" },
        take: CATCH_UP_TURNS,
      });
      // Oldest first; a turn never sent and long over is history, not news.
      for (const turn of turns.reverse()) {
        if (this.sent.has(turn.id) || turn.status === "RUNNING" || turn.status === "REQUIRES_ACTION") this.deliver(turn);
      }
    });
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const unlisten = this.unlisten;
    this.unlisten = undefined;
    await unlisten?.().catch((error: unknown) => this.logger.warn({ err: error }, "could not stop listening for turns"));
  }

  /** One read at a time, in notification order; a failed read is logged and the next notification reads again. */
  private enqueue(work: () => Promise<void>): void {
    this.chain = this.chain.then(work).catch((error: unknown) => {
      this.logger.warn({ err: error }, "re-reading a turn failed; the next change re-reads it");
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

export class TurnFeed {
  private established = 0;
  private readonly followers = new Set<ConversationTurns>();

  constructor(
    private readonly db: Db,
    private readonly listener: Pick<PgListener, "listen">,
    private readonly logger: Logger,
    /** The hub's: a turnUpdated takes one of the user's slots like any other subscription. */
    private readonly admission: Admission,
    private readonly bufferLimit = 1000,
  ) {}

  /** Subscriptions whose LISTEN was in place: from then on no change of theirs can be missed. */
  get establishedCount(): number {
    return this.established;
  }

  get subscriberCount(): number {
    return this.followers.size;
  }

  /** Call when the LISTEN connection (re)connects: every subscriber re-reads its conversation's recent turns. */
  catchUp(): void {
    for (const follower of this.followers) follower.catchUp();
  }

  /**
   * The conversation's turns as they change. The caller has checked the
   * conversation is the user's. Holds one of the user's SUBSCRIPTIONS_PER_USER
   * slots while open; a consumer `bufferLimit` events behind is ended with
   * SUBSCRIPTION_OVERFLOW, as the other feeds are.
   */
  follow(userId: string, conversationId: string): AsyncIterableIterator<Turn | StreamEnd> {
    const limit = this.bufferLimit;
    const overflow = () =>
      new AppError(
        ErrorCode.SUBSCRIPTION_OVERFLOW,
        `turnUpdated fell more than ${limit} events behind and was ended; subscribe again and re-read the turn`,
        {
          extensions: { limit },
        },
      );
    return this.admission.stream<Turn>(userId, { limit, overflowError: overflow, kind: "turnUpdated" }, async (outlet) => {
      const follower = new ConversationTurns(this.db, userId, conversationId, this.logger, outlet);
      this.followers.add(follower);
      outlet.onClose(() => {
        this.followers.delete(follower);
        void follower.close();
      });
      const unlisten = await this.listener.listen(userChannel(userId), (note) => follower.onNotification(note));
      // Ended while the LISTEN was being set up: nothing else will take it down.
      if (outlet.closed) return void (await unlisten());
      follower.unlisten = unlisten;
      this.established += 1;
    });
  }
}
