import { setTimeout as sleep } from "node:timers/promises";
import { Backoff, type BackoffPolicy } from "../lib/backoff.js";
import type { Message } from "../generated/prisma/client.js";
import { SubscriberRoster, type Feed, type FeedContext, type FeedLimits } from "./feed.js";
import type { MessageNotification } from "./protocol.js";
import { isSettled } from "./settled.js";
import type { Outlet } from "./subscriber.js";

/**
 * messageAdded for one user. Each subscriber has a high-water mark per
 * conversation (the highest seq it was given); a conversation's seqs are
 * dense and commit in order (src/domain/messages.ts), so "every row above the
 * mark, in seq order" is gap-free and duplicate-free, whatever re-reads it and
 * however often. Rows go out only up to the first one that is not settled.
 *
 * A subscriber starts (its marks read) once its LISTEN is in place; with
 * afterSeq it first replays on its own, a page at a time and only as fast as
 * it takes them, then joins the live re-reads, which serve every live
 * subscriber of a conversation with one query.
 */

export interface MessageSubscription {
  conversationId?: string | undefined;
  /** Replay persisted messages after this seq first (requires conversationId). */
  afterSeq?: number | undefined;
}

interface MessageSubscriber {
  readonly conversationId: string | undefined;
  readonly afterSeq: number | undefined;
  readonly outlet: Outlet<Message>;
  /** starting: marks not read yet; replaying: paging through afterSeq on its own; live: fed by hints. */
  state: "starting" | "replaying" | "live";
  /** Highest seq delivered, per conversation (for all-conversation subscribers, those it has seen). */
  readonly marks: Map<string, number>;
}

/** A seq above any real one: a hint that some rows of the conversation may be new. */
const ANY_SEQ = Number.MAX_SAFE_INTEGER;

export class MessageFeed implements Feed {
  private readonly roster: SubscriberRoster<MessageSubscriber>;
  /** Conversations with new rows: the highest seq hinted, and which hint came last. */
  private readonly hinted = new Map<string, { seq: number; hint: number }>();
  private hints = 0;
  private catchUpPending = false;
  /** Replays and live re-reads read this many rows a query; a replay reads its next page once at most bufferLimit - page wait. */
  private readonly page: number;

  constructor(
    private readonly context: FeedContext,
    private readonly limits: FeedLimits,
    private readonly retry: BackoffPolicy,
  ) {
    this.page = Math.max(1, Math.min(limits.pageSize, Math.floor(limits.bufferLimit / 2)));
    this.roster = new SubscriberRoster(context.requestFlush);
  }

  get size(): number {
    return this.roster.size;
  }

  get buffered(): number {
    return this.roster.buffered;
  }

  /** Registers a subscriber; it gets nothing until start(). Returns its removal. */
  add(outlet: Outlet<Message>, options: MessageSubscription): { start(): void; remove(): void } {
    const sub: MessageSubscriber = {
      conversationId: options.conversationId,
      afterSeq: options.afterSeq,
      outlet,
      state: "starting",
      marks: new Map(),
    };
    // start() is called once the user's LISTEN is in place: the marks read after that miss nothing.
    return this.roster.add(sub);
  }

  hint(note: MessageNotification): void {
    this.markHinted(note.conversationId, note.seq);
    this.context.requestFlush();
  }

  private markHinted(conversationId: string, seq: number): void {
    this.hints += 1;
    this.hinted.set(conversationId, { seq: Math.max(this.hinted.get(conversationId)?.seq ?? 0, seq), hint: this.hints });
  }

  reconnected(): void {
    this.catchUpPending = true;
  }

  async flush(): Promise<void> {
    if (this.roster.size === 0) {
      this.hinted.clear();
      this.catchUpPending = false;
      return;
    }
    await this.startPending();
    if (this.catchUpPending) {
      await this.catchUp();
      this.catchUpPending = false;
    }
    for (const [conversationId, hinted] of [...this.hinted]) {
      await this.sync(conversationId, hinted.seq);
      // Only once delivered (a failed re-read stays hinted, and the retry reads
      // it again), and only if no hint came meanwhile: that row may have
      // committed after the read.
      if (this.hinted.get(conversationId)?.hint === hinted.hint) this.hinted.delete(conversationId);
    }
  }

  /** Reads the starting points of every subscriber waiting for one, in one query. */
  private async startPending(): Promise<void> {
    const batch = this.roster.waiting();
    if (batch.length === 0) return;
    const needsAll = batch.some((sub) => sub.conversationId === undefined);
    const needsOne = [
      ...new Set(batch.filter((sub) => sub.afterSeq === undefined && sub.conversationId !== undefined).map((sub) => sub.conversationId as string)),
    ];
    const lastSeqs = needsAll || needsOne.length > 0 ? await this.lastSeqs(needsAll ? undefined : needsOne) : new Map<string, number>();
    this.roster.started(batch);
    for (const sub of batch) {
      if (sub.conversationId === undefined) {
        for (const [id, seq] of lastSeqs) sub.marks.set(id, seq);
      } else {
        sub.marks.set(sub.conversationId, sub.afterSeq ?? lastSeqs.get(sub.conversationId) ?? 0);
      }
      // From here on every commit reaches it: counted as established.
      this.context.established();
      if (sub.afterSeq !== undefined) {
        sub.state = "replaying";
        this.replay(sub).catch((error: unknown) => {
          this.context.logger.error({ err: error }, "messageAdded replay failed");
          sub.outlet.end(error);
        });
      } else {
        sub.state = "live";
      }
    }
  }

  /** The newest seq of each of the user's conversations (or of some). */
  private async lastSeqs(ids?: string[]): Promise<Map<string, number>> {
    const rows = await this.context.db.conversation.findMany({
      where: { userId: this.context.userId, ...(ids === undefined ? {} : { id: { in: ids } }) },
      select: { id: true, lastSeq: true },
    });
    return new Map(rows.map((row) => [row.id, row.lastSeq]));
  }

  /**
   * After a listener outage: every conversation some live subscriber is
   * behind on is re-read (replays and starting subscribers read on their own).
   */
  private async catchUp(): Promise<void> {
    const live = [...this.roster.all].filter((sub) => sub.state === "live");
    if (live.length === 0) return;
    const scoped = live.every((sub) => sub.conversationId !== undefined);
    const lastSeqs = await this.lastSeqs(scoped ? [...new Set(live.map((sub) => sub.conversationId as string))] : undefined);
    for (const [conversationId, lastSeq] of lastSeqs) {
      const behind = live.some((sub) => wants(sub, conversationId) && markOf(sub, conversationId) < lastSeq);
      if (behind) this.markHinted(conversationId, ANY_SEQ);
    }
  }

  /** Delivers every settled row of the conversation above each live subscriber's mark, a page at a time. */
  private async sync(conversationId: string, hintSeq: number): Promise<void> {
    let interested = [...this.roster.all].filter((sub) => sub.state === "live" && !sub.outlet.closed && wants(sub, conversationId));
    if (interested.length === 0) return;
    let floor = Math.min(...interested.map((sub) => markOf(sub, conversationId)));
    if (hintSeq <= floor) return;
    for (;;) {
      const rows = await this.read(conversationId, floor);
      const settled = settledPrefix(rows);
      for (const sub of interested) deliver(sub, conversationId, settled);
      this.observeLag(settled);
      if (settled.length < this.page) return;
      floor = settled.at(-1)!.seq;
      interested = interested.filter((sub) => !sub.outlet.closed);
      if (interested.length === 0) return;
    }
  }

  /**
   * Every row read here is above the lowest mark, so new to some live
   * subscriber: one lag observation each, from when it took its final form
   * (settled_at; created_at on rows older than that column). Replays are
   * history and are not observed.
   */
  private observeLag(rows: readonly Message[]): void {
    const delivered = this.context.delivered;
    if (delivered === undefined) return;
    for (const row of rows) delivered("messageAdded", row.settledAt ?? row.createdAt);
  }

  /**
   * An afterSeq replay: pages of rows above the subscriber's mark, each read
   * once the subscriber has taken enough of the last one that a page fits in
   * its buffer, however far back it starts. A failed read is retried with
   * backoff until it succeeds or the subscriber leaves. At the end it turns
   * live and asks for a re-read, for what committed since its last page.
   */
  private async replay(sub: MessageSubscriber): Promise<void> {
    const conversationId = sub.conversationId as string;
    const lowWater = this.limits.bufferLimit - this.page;
    const backoff = new Backoff(this.retry);
    const left = new AbortController();
    sub.outlet.onClose(() => left.abort());
    while (!sub.outlet.closed) {
      let rows: Message[];
      try {
        rows = await this.read(conversationId, markOf(sub, conversationId));
      } catch (error) {
        const delay = backoff.next();
        this.context.logger.warn({ err: error, attempt: backoff.attempts, delayMs: Math.round(delay) }, "messageAdded replay read failed; retrying");
        // Stops waiting when the subscriber leaves.
        await sleep(delay, undefined, { signal: left.signal }).catch(() => {});
        continue;
      }
      backoff.reset();
      const settled = settledPrefix(rows);
      deliver(sub, conversationId, settled);
      if (settled.length < this.page) break;
      await sub.outlet.drained(lowWater);
    }
    await sub.outlet.drained(lowWater);
    if (sub.outlet.closed) return;
    sub.state = "live";
    this.markHinted(conversationId, ANY_SEQ);
    this.context.requestFlush();
  }

  private read(conversationId: string, afterSeq: number): Promise<Message[]> {
    return this.context.db.message.findMany({
      where: { userId: this.context.userId, conversationId, seq: { gt: afterSeq } },
      orderBy: { seq: "asc" },
      take: this.page,
    });
  }
}

function wants(sub: MessageSubscriber, conversationId: string): boolean {
  return sub.conversationId === undefined || sub.conversationId === conversationId;
}

function markOf(sub: MessageSubscriber, conversationId: string): number {
  // A conversation an all-conversations subscriber has no mark for began after it started.
  return sub.marks.get(conversationId) ?? 0;
}

/** The rows up to, not including, the first one that may not go out yet. */
function settledPrefix(rows: readonly Message[]): readonly Message[] {
  const cut = rows.findIndex((row) => !isSettled(row));
  return cut === -1 ? rows : rows.slice(0, cut);
}

function deliver(sub: MessageSubscriber, conversationId: string, rows: readonly Message[]): void {
  let mark = markOf(sub, conversationId);
  for (const row of rows) {
    if (row.seq <= mark) continue;
    if (!sub.outlet.push(row)) return;
    mark = row.seq;
  }
  sub.marks.set(conversationId, mark);
}
