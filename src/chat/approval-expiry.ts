import type { Db } from "../db/client.js";
import { expireDueTurns, msUntilNextExpiry } from "../domain/tool-approvals.js";
import type { Logger } from "../lib/logger.js";

/**
 * Ends turns whose approval expired (APPROVAL_EXPIRED), on time, from one
 * timer per instance. The timer is not the only way a turn expires: every
 * request that touches a waiting turn (decideToolCalls, cancelTurn,
 * activeTurn, a new message in its conversation) ends it first if it is past
 * due, so an expiry is exact for whoever looks, even when no instance was up
 * at the moment it fell due.
 *
 * The timer wakes when the next PENDING approval of any turn falls due (read
 * from the database, by its clock), and at least every MAX_SLEEP_MS, so a
 * pause stored by another instance that died is swept within that; the
 * instance that pauses a turn wakes it for that pause's own expiry. Every
 * instance may sweep at once: the turn's lock decides who ends it.
 */

/** The longest the timer sleeps: how late a turn paused by a vanished instance may expire when nobody looks at it. */
const MAX_SLEEP_MS = 30_000;
/** After a failed sweep (the database away), the next try. */
const RETRY_MS = 5000;

export class ApprovalExpiry {
  private timer: NodeJS.Timeout | undefined;
  /** performance.now() at which the timer fires. */
  private wakeAt = Number.POSITIVE_INFINITY;
  private sweeping = false;
  private stopped = true;

  constructor(
    private readonly db: Db,
    private readonly logger: Logger,
    private readonly maxSleepMs = MAX_SLEEP_MS,
  ) {}

  /** Sweeps now, then whenever the next approval falls due. */
  start(): void {
    this.stopped = false;
    this.wakeIn(0);
  }

  /** A turn paused here, its approvals due in `ms`: wake then, if that is sooner than planned. */
  pausedFor(ms: number): void {
    this.wakeIn(ms);
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
    this.timer = undefined;
  }

  private wakeIn(ms: number): void {
    if (this.stopped) return;
    const at = performance.now() + Math.max(0, ms);
    if (this.timer !== undefined && at >= this.wakeAt) return;
    clearTimeout(this.timer);
    this.wakeAt = at;
    // A few milliseconds late, so the database's clock has passed the expiry when the sweep reads it.
    this.timer = setTimeout(() => void this.sweep(), Math.max(0, ms) + 5);
    this.timer.unref();
  }

  private async sweep(): Promise<void> {
    this.timer = undefined;
    this.wakeAt = Number.POSITIVE_INFINITY;
    if (this.stopped) return;
    // One sweep at a time; the one that came due meanwhile runs right after.
    if (this.sweeping) return this.wakeIn(100);
    this.sweeping = true;
    let next = this.maxSleepMs;
    try {
      const ended = await expireDueTurns(this.db);
      if (ended > 0) this.logger.info({ turns: ended }, "ended turns whose approval expired");
      next = Math.min(next, (await msUntilNextExpiry(this.db)) ?? next);
    } catch (error) {
      this.logger.warn({ err: error }, "could not sweep expired approvals; retrying (requests still find them)");
      next = RETRY_MS;
    } finally {
      this.sweeping = false;
    }
    this.wakeIn(next);
  }
}
