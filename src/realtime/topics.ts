import type { Logger } from "../lib/logger.js";
import { parseNotification } from "./protocol.js";
import type { NotificationHandler } from "./transport.js";

/**
 * The topics a transport is asked for, each with its handlers, and the one
 * place a wake-up is parsed: once, with the protocol's parser, however many
 * handlers its topic has (a malformed payload is logged once and reaches
 * none). Every transport keeps its wanted topics here, apart from what its
 * connection has subscribed to, and reconciles the two its own way.
 */
export class Topics {
  private readonly wanted = new Map<string, Set<NotificationHandler>>();

  constructor(private readonly logger: Logger) {}

  get size(): number {
    return this.wanted.size;
  }

  has(topic: string): boolean {
    return this.wanted.has(topic);
  }

  names(): string[] {
    return [...this.wanted.keys()];
  }

  /** Adds a handler. Returns its removal, which answers whether that left the topic without handlers (once). */
  add(topic: string, handler: NotificationHandler): () => boolean {
    let handlers = this.wanted.get(topic);
    if (!handlers) {
      handlers = new Set();
      this.wanted.set(topic, handlers);
    }
    handlers.add(handler);
    let removed = false;
    return () => {
      if (removed) return false;
      removed = true;
      const current = this.wanted.get(topic);
      if (!current?.delete(handler) || current.size > 0) return false;
      this.wanted.delete(topic);
      return true;
    };
  }

  /** Parses a payload heard on a topic and hands it to the topic's handlers. */
  dispatch(topic: string, payload: string): void {
    const handlers = this.wanted.get(topic);
    if (!handlers) return;
    const notification = parseNotification(payload, this.logger);
    if (!notification) return;
    for (const handler of [...handlers]) {
      try {
        handler(notification);
      } catch (error) {
        this.logger.error({ err: error }, "notification handler failed");
      }
    }
  }
}
