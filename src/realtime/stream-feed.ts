import type { Db } from "../db/client.js";
import { charLength } from "../domain/bounds.js";
import type { Message } from "../generated/prisma/client.js";
import { AppError, ErrorCode } from "../lib/errors.js";
import type { Logger } from "../lib/logger.js";
import type { Admission } from "./admission.js";
import { userChannel, type Notification } from "./protocol.js";
import type { Outlet, StreamEnd } from "./subscriber.js";
import { isSettled } from "./settled.js";
import type { RealtimeTransport } from "./transport.js";

/**
 * messageStream: an answer's text as it is written, to every subscriber of
 * the conversation on any instance, whichever instance runs the turn.
 *
 * The row is the truth. A notification ({k: 'stream'} per flush, {k:
 * 'message'} when the answer settles) is only a hint with ids and a length;
 * each subscriber re-reads the row under the user's scope and sends what it
 * has not sent yet: content from the length it has delivered, in characters
 * (code points). So offsets run end to end whatever notifications were merged
 * or missed, and a subscriber that joins mid-answer first gets everything so
 * far at offset 0. The last event of a message carries its final status.
 */

export interface MessageStreamEvent {
  /** The answer as read for this event: STREAMING until its last event. */
  message: Message;
  /** Where `delta` starts in message.content, in characters. */
  offset: number;
  delta: string;
}

/** While an answer streams, a subscriber that heard nothing for this long re-reads it (a lost notification). */
const QUIET_RESYNC_MS = 1000;
/** Ended answers remembered per subscriber, so a late duplicate notification sends nothing. */
const ENDED_KEPT = 64;

/** The text from code point `from` on. */
export function sliceCodePoints(text: string, from: number): string {
  let index = 0;
  for (let seen = 0; seen < from && index < text.length; seen += 1) {
    const code = text.charCodeAt(index);
    index += code >= 0xd800 && code <= 0xdbff && index + 1 < text.length ? 2 : 1;
  }
  return text.slice(index);
}

class ConversationStream {
  /** Characters delivered, per answer still streaming. */
  private readonly delivered = new Map<string, number>();
  private readonly ended = new Set<string>();
  /** Answers to re-read at the next sync. */
  private readonly wanted = new Set<string>();
  private chain: Promise<void> = Promise.resolve();
  private queued = false;
  private quiet: NodeJS.Timeout | undefined;
  private closed = false;
  unlisten: (() => Promise<void>) | undefined;

  constructor(
    private readonly db: Db,
    private readonly userId: string,
    private readonly conversationId: string,
    private readonly logger: Logger,
    private readonly onClose: () => void,
    /** The subscriber's bounded stream (src/realtime/subscriber.ts); it ends this one when it closes. */
    private readonly outlet: Outlet<MessageStreamEvent>,
  ) {}

  /** Sends the answer being written now, if one is: everything so far, at offset 0. */
  start(): Promise<void> {
    return this.enqueue(() => this.readLatest());
  }

  /**
   * After the LISTEN connection was down (or first came up after this
   * subscriber listened): whatever it missed, from the rows.
   */
  catchUp(): void {
    if (this.closed) return;
    void this.enqueue(async () => {
      await this.readLatest();
      for (const id of this.delivered.keys()) this.wanted.add(id);
      await this.sync();
    }).catch(() => {});
  }

  private async readLatest(): Promise<void> {
    const last = await this.db.message.findFirst({
      where: { userId: this.userId, conversationId: this.conversationId },
      orderBy: { seq: "desc" },
    });
    if (last && !isSettled(last) && !this.delivered.has(last.id)) this.deliver(last);
  }

  onNotification(note: Notification): void {
    if (this.closed || (note.kind !== "stream" && note.kind !== "message") || note.conversationId !== this.conversationId) return;
    if (note.kind === "stream") {
      if (this.ended.has(note.messageId)) return;
      // Already sent that far: a notification merged into an earlier read.
      if ((this.delivered.get(note.messageId) ?? -1) >= note.length) return;
    } else if (!this.delivered.has(note.messageId)) {
      // Settled messages that never streamed are messageAdded's.
      return;
    }
    this.wanted.add(note.messageId);
    this.schedule();
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.onClose();
    clearTimeout(this.quiet);
    const unlisten = this.unlisten;
    this.unlisten = undefined;
    await unlisten?.().catch((error: unknown) => this.logger.warn({ err: error }, "could not stop listening for a stream"));
  }

  /** Runs after everything queued before it: one read at a time, in order. */
  private enqueue(work: () => Promise<void>): Promise<void> {
    const next = this.chain.then(work);
    this.chain = next.catch((error: unknown) => {
      this.logger.error({ err: error }, "stream delivery failed; the next notification retries");
    });
    return next;
  }

  private schedule(): void {
    if (this.queued || this.closed) return;
    this.queued = true;
    void this.enqueue(async () => {
      this.queued = false;
      await this.sync();
    }).catch(() => {});
  }

  private async sync(): Promise<void> {
    const ids = [...this.wanted];
    this.wanted.clear();
    if (ids.length === 0 || this.closed) return;
    const rows = await this.db.message.findMany({
      where: { id: { in: ids }, userId: this.userId, conversationId: this.conversationId },
      orderBy: { seq: "asc" },
    });
    for (const row of rows) this.deliver(row);
    this.armQuietResync();
  }

  private deliver(row: Message): void {
    if (this.ended.has(row.id)) return;
    const from = this.delivered.get(row.id) ?? 0;
    const delta = sliceCodePoints(row.content, from);
    const settled = isSettled(row);
    if (!settled) {
      this.delivered.set(row.id, from + charLength(delta));
      if (delta !== "") this.outlet.push({ message: row, offset: from, delta });
      return;
    }
    this.outlet.push({ message: row, offset: from, delta });
    this.delivered.delete(row.id);
    this.ended.add(row.id);
    if (this.ended.size > ENDED_KEPT) this.ended.delete(this.ended.values().next().value as string);
  }

  private armQuietResync(): void {
    clearTimeout(this.quiet);
    if (this.delivered.size === 0 || this.closed) return;
    this.quiet = setTimeout(() => {
      for (const id of this.delivered.keys()) this.wanted.add(id);
      this.schedule();
    }, QUIET_RESYNC_MS);
    this.quiet.unref();
  }
}

export class StreamFeed {
  private established = 0;
  private readonly streams = new Set<ConversationStream>();

  constructor(
    private readonly db: Db,
    private readonly listener: Pick<RealtimeTransport, "listen">,
    private readonly logger: Logger,
    /** The hub's: a messageStream takes one of the user's slots like any other subscription. */
    private readonly admission: Admission,
    /** Events one subscriber may leave unread before it is ended (the other feeds' bound). */
    private readonly bufferLimit = 1000,
  ) {}

  /** Subscriptions whose LISTEN and first read were in place: from then on no text of theirs can be missed. */
  get establishedCount(): number {
    return this.established;
  }

  /** Subscribers open in this process. */
  get subscriberCount(): number {
    return this.streams.size;
  }

  /**
   * Call when the LISTEN connection (re)connects: notifications sent while it
   * was down are lost, so every subscriber re-reads where its answers stand.
   */
  catchUp(): void {
    for (const stream of this.streams) stream.catchUp();
  }

  /**
   * The conversation's answers as they are written. The caller has checked the conversation is
   * the user's. Opens on the first pull (graphql-ws and SSE pull at once); a consumer more than
   * `bufferLimit` events behind is ended with SUBSCRIPTION_OVERFLOW, as the other feeds are. It holds
   * one of the user's SUBSCRIPTIONS_PER_USER slots while open; one too many is RATE_LIMITED.
   */
  follow(userId: string, conversationId: string): AsyncIterableIterator<MessageStreamEvent | StreamEnd> {
    const limit = this.bufferLimit;
    const overflow = () =>
      new AppError(ErrorCode.SUBSCRIPTION_OVERFLOW, `messageStream fell more than ${limit} events behind and was ended; subscribe again`, {
        extensions: { limit },
      });
    return this.admission.stream<MessageStreamEvent>(userId, { limit, overflowError: overflow, kind: "messageStream" }, async (outlet) => {
      const stream = new ConversationStream(this.db, userId, conversationId, this.logger, () => this.streams.delete(stream), outlet);
      this.streams.add(stream);
      outlet.onClose(() => void stream.close());
      // LISTEN first, then read: nothing written after the read can be missed.
      stream.unlisten = await this.listener.listen(userChannel(userId), (note) => stream.onNotification(note));
      await stream.start();
      this.established += 1;
    });
  }
}
