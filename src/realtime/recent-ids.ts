/**
 * The last `capacity` message ids seen, to drop a wake-up delivered twice
 * (the relay publishes a row again when it died, or lost its lock, between
 * the publish and the delete; JetStream's duplicate window keeps the second
 * copy out of the stream, but a core subscriber still hears both). Bounded:
 * the oldest id is forgotten first. A duplicate older than that only costs a
 * re-read: the feeds deliver by seq and version, never twice.
 */
export class RecentIds {
  private readonly ring: (string | undefined)[];
  private readonly known = new Set<string>();
  private next = 0;

  constructor(readonly capacity: number) {
    this.ring = new Array<string | undefined>(capacity);
  }

  /** Whether `id` was seen already; remembers it either way. */
  seen(id: string): boolean {
    if (this.known.has(id)) return true;
    const evicted = this.ring[this.next];
    if (evicted !== undefined) this.known.delete(evicted);
    this.ring[this.next] = id;
    this.known.add(id);
    this.next = (this.next + 1) % this.capacity;
    return false;
  }
}
