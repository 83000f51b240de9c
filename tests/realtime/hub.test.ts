import { EventEmitter } from "node:events";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import type { Db } from "../../src/db/client.js";
import type { Message } from "../../src/generated/prisma/client.js";
import { createLogger } from "../../src/lib/logger.js";
import { RealtimeHub, StreamEnd } from "../../src/realtime/hub.js";
import { createTransport } from "../../src/realtime/create-transport.js";
import { parseNotification } from "../../src/realtime/protocol.js";
import type { NotificationHandler, RealtimeTransport } from "../../src/realtime/transport.js";
import { databaseUrl, newUserId, testDb } from "../helpers/db.js";
import { runTransport } from "../helpers/server.js";
import { appendVia, newConversation, range, within } from "./support.js";

/**
 * The hub on real Postgres and a real transport (the run's: a LISTEN
 * connection, or NATS), with the timing of two races pinned down that a
 * server only hits now and then.
 */

const logger = createLogger("silent");

/**
 * A transport whose listen() hands its handler one notification before it
 * resolves: what happens when Postgres' NotificationResponse arrives in the
 * same read as the LISTEN's ReadyForQuery (pg emits it synchronously, before
 * the LISTEN's promise continues).
 */
class EarlyNotificationListener extends EventEmitter {
  early: string | undefined;

  constructor(private readonly inner: RealtimeTransport) {
    super();
  }

  async listen(topic: string, handler: NotificationHandler): Promise<() => Promise<void>> {
    const unlisten = await this.inner.listen(topic, handler);
    const payload = this.early;
    this.early = undefined;
    if (payload === undefined) return unlisten;
    const notification = parseNotification(payload, logger);
    if (!notification) throw new Error(`not a notification: ${payload}`);
    handler(notification);
    return unlisten;
  }
}

function notificationOf(message: Message): string {
  return JSON.stringify({ k: "message", i: message.id, c: message.conversationId, s: message.seq, st: message.status });
}

async function nextOf<T>(iterator: AsyncIterableIterator<T | StreamEnd>, what: string): Promise<T> {
  const result = await within(iterator.next(), 10_000, what);
  if (result.done) throw new Error(`${what}: the stream ended`);
  if (result.value instanceof StreamEnd) throw new Error(`${what}: the stream ended with ${String(result.value.error)}`);
  return result.value;
}

describe("the realtime hub", () => {
  let db: Db;
  let listener: RealtimeTransport;
  const iterators: AsyncIterableIterator<unknown>[] = [];

  beforeAll(async () => {
    db = testDb();
    listener = createTransport({
      settings: runTransport(),
      connectionString: databaseUrl(),
      logger,
      db,
      heartbeatIntervalMs: 500,
      heartbeatTimeoutMs: 1000,
      backoff: { initialMs: 50, maxMs: 500 },
    });
    await listener.start();
  });
  afterAll(async () => {
    await Promise.all(iterators.map((iterator) => iterator.return?.()));
    await listener.close();
    await db.$disconnect();
  });

  it("should replay from afterSeq, not from the start, when a notification arrives together with the LISTEN's reply", async () => {
    const early = new EarlyNotificationListener(listener);
    const hub = new RealtimeHub(db, early as unknown as RealtimeTransport, logger);
    const userId = newUserId();
    const conversation = await newConversation(db, userId);
    const rows = await appendVia(
      db,
      userId,
      conversation.id,
      range(1, 20).map((n) => `m${n}`),
    );
    early.early = notificationOf(rows.at(-1)!);

    const messages = hub.messages(userId, { conversationId: conversation.id, afterSeq: 10 });
    iterators.push(messages);
    const seqs: number[] = [];
    while (seqs.at(-1) !== 20) seqs.push((await nextOf(messages, "replay")).seq);
    await appendVia(db, userId, conversation.id, ["m21"]);
    seqs.push((await nextOf(messages, "live message")).seq);
    expect(seqs).toEqual(range(11, 21));
  });

  it("should start at the newest message, not replay the conversation, when a notification arrives together with the LISTEN's reply", async () => {
    const early = new EarlyNotificationListener(listener);
    const hub = new RealtimeHub(db, early as unknown as RealtimeTransport, logger);
    const userId = newUserId();
    const conversation = await newConversation(db, userId);
    const rows = await appendVia(db, userId, conversation.id, ["old 1", "old 2", "old 3"]);
    early.early = notificationOf(rows.at(-1)!);

    const messages = hub.messages(userId, { conversationId: conversation.id });
    iterators.push(messages);
    // A stream opens when it is first pulled, as graphql-ws and SSE do at once.
    const first = nextOf(messages, "first message");
    await vi.waitFor(() => expect(hub.establishedCount, "established subscriptions").toBe(1), { timeout: 15_000, interval: 10 });
    await appendVia(db, userId, conversation.id, ["new"]);
    expect(await first).toMatchObject({ seq: 4, content: "new" });
  });

  it("should count a messageAdded subscription as established only once its starting point is read", async () => {
    // The hub reads the conversation's newest seq through a slow database; the writer uses a fast one.
    const slow = slowConversationReads(db, 500);
    const hub = new RealtimeHub(slow, listener, logger);
    const userId = newUserId();
    const conversation = await newConversation(db, userId);
    await appendVia(db, userId, conversation.id, ["before"]);

    const messages = hub.messages(userId, { conversationId: conversation.id });
    iterators.push(messages);
    const first = nextOf(messages, "message committed after establishment");
    await vi.waitFor(() => expect(hub.establishedCount, "established subscriptions").toBe(1), { timeout: 15_000, interval: 10 });
    await appendVia(db, userId, conversation.id, ["after"]);
    expect(await first).toMatchObject({ seq: 2, content: "after" });
  });
});

/** The same client, with conversation.findFirst/findMany answering `ms` late. */
function slowConversationReads(db: Db, ms: number): Db {
  const delay = () => new Promise((resolve) => setTimeout(resolve, ms));
  const conversation = new Proxy(db.conversation, {
    get(target, property, receiver) {
      const value = Reflect.get(target, property, receiver) as unknown;
      if ((property === "findFirst" || property === "findMany") && typeof value === "function") {
        return async (...args: unknown[]) => {
          await delay();
          return (value as (...a: unknown[]) => Promise<unknown>).apply(target, args);
        };
      }
      return value;
    },
  });
  return new Proxy(db, {
    get(target, property) {
      if (property === "conversation") return conversation;
      const value = Reflect.get(target, property, target) as unknown;
      return typeof value === "function" ? (value as (...a: unknown[]) => unknown).bind(target) : value;
    },
  });
}
