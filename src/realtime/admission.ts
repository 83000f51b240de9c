import { AppError, ErrorCode } from "../lib/errors.js";
import { subscriberStream, type Outlet, type StreamEnd, type StreamOptions } from "./subscriber.js";

/** The subscription root fields, as the slots they hold are counted by kind (the metrics' live subscribers). */
export type SubscriptionKind = "messageAdded" | "taskChanged" | "conversationChanged" | "messageStream" | "turnUpdated" | "other";

/**
 * The one way a subscription opens: every kind (messageAdded, taskChanged,
 * messageStream, and any added later) takes one of its user's slots here, so
 * SUBSCRIPTIONS_PER_USER counts them all on this instance, and one more is
 * refused with the same RATE_LIMITED error whatever its kind.
 *
 * The slot is taken when the stream opens (its first pull) and given back when
 * it closes, exactly once however it closes: complete, error, overflow, the
 * client's stop, its socket closing, token expiry or the server's drain all
 * run the stream's cleanups once (./subscriber.ts).
 */
export class Admission {
  /** Slots held, per user; a user with none has no entry. */
  private readonly held = new Map<string, number>();
  private total = 0;
  private readonly kinds = new Map<SubscriptionKind, number>();

  constructor(
    /** Subscriptions one user may have open at once (SUBSCRIPTIONS_PER_USER). */
    readonly perUser: number,
  ) {}

  /** Slots held now, by every user. */
  get openCount(): number {
    return this.total;
  }

  /** Slots held now, by the kind of subscription holding them (kinds never opened are absent). */
  openByKind(): ReadonlyMap<SubscriptionKind, number> {
    return this.kinds;
  }

  /** Slots the user holds now. */
  heldBy(userId: string): number {
    return this.held.get(userId) ?? 0;
  }

  /**
   * A subscriber stream that holds one of the user's slots while it is open.
   * `open` runs only once the slot is taken; refused, the stream's one result
   * is the RATE_LIMITED error, then it completes.
   */
  stream<T>(
    userId: string,
    options: StreamOptions & { kind?: SubscriptionKind },
    open: (outlet: Outlet<T>) => Promise<void>,
  ): AsyncIterableIterator<T | StreamEnd> {
    return subscriberStream<T>(options, async (outlet) => {
      outlet.onClose(this.take(userId, options.kind));
      await open(outlet);
    });
  }

  /** Takes a slot, or throws RATE_LIMITED. Returns its release, which frees it once however often it is called. */
  take(userId: string, kind: SubscriptionKind = "other"): () => void {
    const held = this.heldBy(userId);
    if (held >= this.perUser) throw tooManySubscriptions(this.perUser);
    this.held.set(userId, held + 1);
    this.total += 1;
    this.kinds.set(kind, (this.kinds.get(kind) ?? 0) + 1);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.total -= 1;
      this.kinds.set(kind, (this.kinds.get(kind) ?? 1) - 1);
      const left = this.heldBy(userId) - 1;
      if (left > 0) this.held.set(userId, left);
      else this.held.delete(userId);
    };
  }
}

function tooManySubscriptions(cap: number): AppError {
  return new AppError(
    ErrorCode.RATE_LIMITED,
    `Too many subscriptions: at most ${cap} may be open at once per user; end one before starting another`,
    { extensions: { limit: cap } },
  );
}
