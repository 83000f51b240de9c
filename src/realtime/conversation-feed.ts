import { AppError, ErrorCode } from "../lib/errors.js";
import type { Admission, SubscriptionKind } from "./admission.js";
import { userChannel, type Notification } from "./protocol.js";
import type { Outlet, StreamEnd } from "./subscriber.js";
import type { RealtimeTransport } from "./transport.js";

/*
 * Why this is a second base beside the hub's feeds (feed.ts: MessageFeed and
 * ChangeFeed, for messageAdded, taskChanged, conversationChanged), although
 * both LISTEN before their first read, re-read under the user's scope and
 * skip what a subscriber already has. Every subscription of both goes
 * through the same admission (Admission.stream, the hub's instance): one
 * slot count, one RATE_LIMITED, one overflow rule. What differs is what is
 * delivered, and that is why they are two:
 *
 * - The hub's feeds owe each subscriber every committed change, once: a
 *   dense seq or a row version plus tombstones, a catch-up from database
 *   time after an outage, a failed read kept pending and retried with
 *   backoff, one query serving all of a user's subscribers, flushed in the
 *   user's order. That is per-user state, batched.
 * - Here each subscriber follows the latest state of one row of one
 *   conversation, and its own position in it: messageStream's characters
 *   delivered of an answer that is rewritten many times a second (a
 *   subscriber that joins mid-answer gets everything so far at offset 0),
 *   turnUpdated's last state sent per turn (intermediate states may collapse
 *   into the latest). A later read supersedes a failed one, so the only
 *   pending state is which rows still need a read: messageStream's quiet
 *   re-sync reads its row again, turnUpdated keeps the turns whose re-read
 *   failed and reads them again with backoff. Per-subscriber state, in its own order, so a
 *   stream's deltas never wait behind the user's task and message re-reads
 *   (the B7 latency).
 *
 * Folding these into the hub would mean a per-subscriber state machine
 * inside a per-user batch, with the two retry rules side by side: one base
 * in name only.
 */

/** One subscriber's view of one conversation: told of the user's notifications and of reconnects. */
export interface ConversationFollower {
  onNotification(note: Notification): void;
  /** The LISTEN connection was away: re-read whatever may have changed meanwhile. */
  catchUp(): void;
  /** The first read, once the LISTEN is in place (optional). */
  start?(): Promise<void>;
  /** Stops it; `unlisten` is what its LISTEN handed back. */
  close(unlisten: (() => Promise<void>) | undefined): Promise<void>;
}

export interface ConversationFeedOptions<E> {
  /** The subscription's name, for its overflow error and the count of live subscribers by kind. */
  name: SubscriptionKind;
  /** What an overflowed subscriber should do, after "subscribe again". */
  overflowAdvice?: string;
  follower(userId: string, conversationId: string, outlet: Outlet<E>): ConversationFollower;
  /** Events one subscriber may leave unread before it is ended (the other feeds' bound). */
  bufferLimit?: number;
}

/**
 * The per-conversation subscriptions (messageStream, turnUpdated): each
 * subscriber takes one of the user's SUBSCRIPTIONS_PER_USER slots through the
 * hub's admission, LISTENs on the user's channel, then reads its start, so
 * nothing written after that read can be missed. A consumer `bufferLimit`
 * events behind is ended with SUBSCRIPTION_OVERFLOW, as the hub's feeds are.
 */
export class ConversationFeed<E> {
  private established = 0;
  private readonly followers = new Set<ConversationFollower>();

  constructor(
    private readonly listener: Pick<RealtimeTransport, "listen">,
    private readonly admission: Admission,
    private readonly options: ConversationFeedOptions<E>,
  ) {}

  /** Subscriptions whose LISTEN and first read were in place: from then on nothing of theirs can be missed. */
  get establishedCount(): number {
    return this.established;
  }

  /** Subscribers open in this process. */
  get subscriberCount(): number {
    return this.followers.size;
  }

  /** Call when the LISTEN connection (re)connects: notifications sent while it was down are lost. */
  catchUp(): void {
    for (const follower of this.followers) follower.catchUp();
  }

  /** The conversation's events. The caller has checked the conversation is the user's. */
  follow(userId: string, conversationId: string): AsyncIterableIterator<E | StreamEnd> {
    const limit = this.options.bufferLimit ?? 1000;
    const advice = this.options.overflowAdvice ?? "";
    const overflow = () =>
      new AppError(
        ErrorCode.SUBSCRIPTION_OVERFLOW,
        `${this.options.name} fell more than ${limit} events behind and was ended; subscribe again${advice}`,
        {
          extensions: { limit },
        },
      );
    return this.admission.stream<E>(userId, { limit, overflowError: overflow, kind: this.options.name }, async (outlet) => {
      const follower = this.options.follower(userId, conversationId, outlet);
      this.followers.add(follower);
      let unlisten: (() => Promise<void>) | undefined;
      outlet.onClose(() => {
        this.followers.delete(follower);
        void follower.close(unlisten);
      });
      // LISTEN first, then read: nothing written after the read can be missed.
      const listening = await this.listener.listen(userChannel(userId), (note) => follower.onNotification(note));
      // Ended while the LISTEN was being set up: nothing else will take it down.
      if (outlet.closed) return void (await listening());
      unlisten = listening;
      await follower.start?.();
      this.established += 1;
    });
  }
}
