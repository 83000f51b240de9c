import { EventEmitter } from "node:events";
import pg from "pg";
import type { Logger } from "../logger.js";

/**
 * One dedicated LISTEN connection per process (on DIRECT_URL: Neon's pooler
 * cannot LISTEN). Topics are counted: the first listener of a topic LISTENs,
 * the last one UNLISTENs. The connection reconnects with capped exponential
 * backoff, and a heartbeat detects half-open connections. After a reconnect
 * it emits "reconnected" with the database time of the last moment it was
 * known to be listening, so subscribers can catch up from the database.
 */

export interface ListenerOptions {
  connectionString: string;
  logger: Logger;
  heartbeatIntervalMs?: number;
  heartbeatTimeoutMs?: number;
  backoff?: { initialMs: number; maxMs: number };
}

export type NotificationHandler = (payload: string) => void;

export interface ReconnectInfo {
  /** Database time up to which every notification is known to have arrived. */
  since: Date;
}

export interface PgListenerEvents {
  reconnected: [ReconnectInfo];
  down: [];
}

export class PgListener extends EventEmitter<PgListenerEvents> {
  private client: pg.Client | undefined;
  private readonly handlers = new Map<string, Set<NotificationHandler>>();
  private readonly pendingListens = new Map<string, Promise<void>>();
  private queue: Promise<void> = Promise.resolve();
  private readonly options: Required<Omit<ListenerOptions, "logger" | "connectionString">> & ListenerOptions;
  private connecting: Promise<void> | undefined;
  private heartbeat: NodeJS.Timeout | undefined;
  private retryTimer: NodeJS.Timeout | undefined;
  private attempt = 0;
  private closed = false;
  /** Database time of the last successful heartbeat or connect. */
  private healthyAt: Date | undefined;
  private everConnected = false;

  constructor(options: ListenerOptions) {
    super();
    this.options = {
      heartbeatIntervalMs: 5000,
      heartbeatTimeoutMs: 3000,
      backoff: { initialMs: 100, maxMs: 10_000 },
      ...options,
    };
  }

  get connected(): boolean {
    return this.client !== undefined;
  }

  /** Number of distinct topics currently listened to. */
  get topicCount(): number {
    return this.handlers.size;
  }

  /** Starts the connection; resolves once it listens (or rejects on the first failure, then keeps retrying). */
  async start(): Promise<void> {
    await this.connect();
  }

  /**
   * Registers a handler on a topic. Resolves once the LISTEN is in place, so
   * a caller that then reads the database cannot miss a later commit.
   * While the connection is down it resolves at once; the reconnect LISTENs
   * and catch-up covers the gap.
   */
  async listen(topic: string, handler: NotificationHandler): Promise<() => Promise<void>> {
    let set = this.handlers.get(topic);
    const first = set === undefined;
    if (!set) {
      set = new Set();
      this.handlers.set(topic, set);
    }
    set.add(handler);
    const client = this.client;
    if (first && client) {
      const listening = this.query(client, `LISTEN ${quoteIdent(topic)}`).then(
        () => {},
        (error: unknown) => {
          this.options.logger.warn({ err: error }, "LISTEN failed; the reconnect will restore it");
          this.dropConnection(client);
        },
      );
      this.pendingListens.set(topic, listening);
      await listening;
      this.pendingListens.delete(topic);
    } else {
      // Another listener of this topic may still be waiting for its LISTEN.
      await this.pendingListens.get(topic);
    }
    return () => this.unlisten(topic, handler);
  }

  /**
   * pg queues queries on a client but deprecates issuing one while another
   * runs; LISTEN, UNLISTEN and heartbeats share one connection, so they take turns.
   */
  private query<T extends pg.QueryResultRow = pg.QueryResultRow>(client: pg.Client, sql: string): Promise<pg.QueryResult<T>> {
    const result = this.queue.then(() => client.query<T>(sql));
    this.queue = result.then(
      () => {},
      () => {},
    );
    return result;
  }

  private async unlisten(topic: string, handler: NotificationHandler): Promise<void> {
    const set = this.handlers.get(topic);
    if (!set?.delete(handler) || set.size > 0) return;
    this.handlers.delete(topic);
    if (!this.client) return;
    try {
      await this.query(this.client, `UNLISTEN ${quoteIdent(topic)}`);
    } catch {
      // The connection is gone; a reconnect only LISTENs to topics that still have handlers.
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    clearInterval(this.heartbeat);
    clearTimeout(this.retryTimer);
    const client = this.client;
    this.client = undefined;
    await client?.end().catch(() => {});
  }

  private connect(): Promise<void> {
    this.connecting ??= this.openConnection().finally(() => {
      this.connecting = undefined;
    });
    return this.connecting;
  }

  private async openConnection(): Promise<void> {
    const client = new pg.Client({
      connectionString: this.options.connectionString,
      keepAlive: true,
      connectionTimeoutMillis: this.options.heartbeatTimeoutMs * 2,
      application_name: "todo-api-listener",
    });
    client.on("error", (error) => {
      this.options.logger.warn({ err: error }, "listener connection error");
      this.dropConnection(client);
    });
    client.on("end", () => this.dropConnection(client));
    client.on("notification", (message) => {
      const set = this.handlers.get(message.channel);
      if (!set || message.payload === undefined) return;
      for (const handler of [...set]) {
        try {
          handler(message.payload);
        } catch (error) {
          this.options.logger.error({ err: error }, "notification handler failed");
        }
      }
    });
    try {
      await client.connect();
      // A fresh turn order per connection: a query stuck on a dead one must not hold up this one.
      this.queue = Promise.resolve();
      for (const topic of this.handlers.keys()) await this.query(client, `LISTEN ${quoteIdent(topic)}`);
      const { rows } = await this.query<{ now: Date }>(client, "SELECT now() AS now");
      if (this.closed) {
        await client.end().catch(() => {});
        return;
      }
      const since = this.healthyAt;
      this.client = client;
      this.healthyAt = rows[0]?.now;
      this.attempt = 0;
      this.startHeartbeat(client);
      // Subscribers may have joined while the connection was down (or before it
      // first came up): they catch up from the database either way.
      if (this.everConnected || this.handlers.size > 0) {
        this.options.logger.info({ topics: this.handlers.size }, "listener connected; subscribers catch up");
        this.emit("reconnected", { since: since ?? new Date(0) });
      }
      this.everConnected = true;
    } catch (error) {
      await client.end().catch(() => {});
      this.scheduleReconnect();
      throw error;
    }
  }

  private startHeartbeat(client: pg.Client): void {
    clearInterval(this.heartbeat);
    this.heartbeat = setInterval(() => {
      const timeout = setTimeout(() => {
        this.options.logger.warn("listener heartbeat timed out");
        this.dropConnection(client);
      }, this.options.heartbeatTimeoutMs);
      this.query<{ now: Date }>(client, "SELECT now() AS now")
        .then(({ rows }) => {
          if (this.client === client) this.healthyAt = rows[0]?.now ?? this.healthyAt;
        })
        .catch(() => this.dropConnection(client))
        .finally(() => clearTimeout(timeout));
    }, this.options.heartbeatIntervalMs);
    this.heartbeat.unref();
  }

  private dropConnection(client: pg.Client): void {
    if (this.client !== client) {
      return;
    }
    this.client = undefined;
    clearInterval(this.heartbeat);
    // Destroys the socket even when the peer is unreachable (half-open).
    (client as unknown as { connection?: { stream?: { destroy(): void } } }).connection?.stream?.destroy();
    client.end().catch(() => {});
    if (this.closed) return;
    this.options.logger.warn("listener connection lost; reconnecting");
    this.emit("down");
    this.scheduleReconnect();
  }

  private scheduleReconnect(): void {
    if (this.closed || this.retryTimer) return;
    const { initialMs, maxMs } = this.options.backoff;
    const delay = Math.min(maxMs, initialMs * 2 ** this.attempt) * (0.5 + Math.random() / 2);
    this.attempt += 1;
    this.retryTimer = setTimeout(() => {
      this.retryTimer = undefined;
      this.connect().catch((error: unknown) => {
        this.options.logger.warn({ err: error, attempt: this.attempt }, "listener reconnect failed");
      });
    }, delay);
    this.retryTimer.unref();
  }
}

function quoteIdent(name: string): string {
  return `"${name.replaceAll('"', '""')}"`;
}
