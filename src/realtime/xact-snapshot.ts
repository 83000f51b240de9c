/**
 * A Postgres snapshot (pg_current_snapshot()), to tell whether a transaction
 * had committed when it was taken. The nats transport takes one when it
 * starts listening to a topic, once its NATS subscription is in place, and
 * drops the topic's wake-ups of transactions the snapshot already saw: LISTEN
 * never hears a NOTIFY committed before it, and the feeds rely on that (their
 * starting point, read after listen() resolves, covers those commits; a late
 * wake-up for one would push a change from before the subscription as new).
 * The relay publishes a row some milliseconds after its commit, so without
 * this a subscription that starts just after a write would hear of it.
 */
export class XactSnapshot {
  private constructor(
    private readonly xmin: bigint,
    private readonly xmax: bigint,
    private readonly inProgress: ReadonlySet<bigint>,
  ) {}

  /** "xmin:xmax:xip,xip,…", as pg_snapshot's text; undefined for anything else. */
  static parse(text: string): XactSnapshot | undefined {
    const match = /^(\d+):(\d+):([\d,]*)$/.exec(text.trim());
    if (!match) return undefined;
    const running = match[3] === "" ? [] : (match[3] as string).split(",").map((id) => BigInt(id));
    return new XactSnapshot(BigInt(match[1] as string), BigInt(match[2] as string), new Set(running));
  }

  /** Whether transaction `xactId` (a decimal string) had committed when the snapshot was taken. */
  saw(xactId: string): boolean {
    if (!/^\d+$/.test(xactId)) return false;
    const id = BigInt(xactId);
    if (id < this.xmin) return true;
    if (id >= this.xmax) return false;
    return !this.inProgress.has(id);
  }
}
