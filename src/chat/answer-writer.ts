/** Where an answer's text is written while it streams (the conversation log, in production). */
export interface AnswerSink {
  /** Stores the first text as a STREAMING message; null when the turn may no longer write. */
  start(content: string): Promise<{ id: string } | null>;
  /** Writes the text so far; false when the turn may no longer write. */
  flush(messageId: string, content: string): Promise<boolean>;
}

export interface AnswerWriterOptions {
  /** STREAM_FLUSH_MS: the longest the stored text lags behind what arrived. */
  flushMs: number;
  /** A write found the turn stopped (cancelled, or taken over as dead). */
  onStopped(): void;
  /** A write failed; the next flush, or the turn's end, writes the text again. */
  onError(error: unknown): void;
}

/**
 * Coalesces an answer's deltas into at most one write per flush interval:
 * the first text is written at once (the row appears), later text once the
 * interval since the previous write has passed, never two writes at a time.
 * Whatever is not written when the call ends is written by the turn's end,
 * in the transaction that settles the message.
 */
export class AnswerWriter {
  private text = "";
  private writtenLength = 0;
  private id: string | undefined;
  private timer: NodeJS.Timeout | undefined;
  private inFlight: Promise<void> | undefined;
  private lastWriteAt = Number.NEGATIVE_INFINITY;
  private closed = false;
  /** Writes made, for the benchmark's writes-per-answer figure. */
  writes = 0;

  constructor(
    private readonly sink: AnswerSink,
    private readonly options: AnswerWriterOptions,
  ) {}

  /** Everything that arrived, written or not. */
  get content(): string {
    return this.text;
  }

  /** The STREAMING row, once the first write made it. */
  get messageId(): string | undefined {
    return this.id;
  }

  append(delta: string): void {
    if (this.closed || delta === "") return;
    this.text += delta;
    this.schedule();
  }

  /** Stops writing and waits for a write in flight, so the end's transaction comes after it. */
  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.timer);
    this.timer = undefined;
    await this.inFlight;
  }

  private schedule(): void {
    // A write in flight schedules the next one when it is done.
    if (this.closed || this.timer !== undefined || this.inFlight !== undefined) return;
    const wait = Math.max(0, this.lastWriteAt + this.options.flushMs - performance.now());
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.inFlight = this.write().finally(() => {
        this.inFlight = undefined;
        if (this.text.length !== this.writtenLength) this.schedule();
      });
    }, wait);
  }

  private async write(): Promise<void> {
    this.lastWriteAt = performance.now();
    const content = this.text;
    this.writes += 1;
    try {
      let ok: boolean;
      if (this.id === undefined) {
        const row = await this.sink.start(content);
        if (row) this.id = row.id;
        ok = row !== null;
      } else {
        ok = await this.sink.flush(this.id, content);
      }
      if (!ok) {
        this.closed = true;
        this.options.onStopped();
        return;
      }
      this.writtenLength = content.length;
    } catch (error) {
      this.options.onError(error);
    }
  }
}
