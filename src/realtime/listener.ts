import { EventEmitter } from "node:events";
import pg from "pg";
import { Backoff, type BackoffPolicy } from "../lib/backoff.js";
import type { Logger } from "../lib/logger.js";
import { Topics } from "./topics.js";
import type { NotificationHandler, RealtimeTransport, TransportEvents } from "./transport.js";
import { claimTransport } from "./transport-mode.js";

export type { NotificationHandler, ReconnectInfo } from "./transport.js";

/**
 * The postgres transport (./transport.ts), REALTIME_TRANSPORT=postgres: one
 * dedicated LISTEN connection per process (on DIRECT_URL: Neon's pooler
 * cannot LISTEN). Topics are counted: a topic is wanted while it has at least
 * one handler. What is wanted and what the connection LISTENs to are kept
 * apart (as graphile's PgSubscriber does) and reconciled on the connection's
 * query chain after every subscribe, every unsubscribe and every (re)connect,
 * so a topic wanted at any moment is LISTENed within one round trip of the
 * connection being up, whatever the timing.
 *
 * The connection reconnects with capped exponential backoff, and a heartbeat
 * detects half-open connections. After a reconnect it emits "reconnected" with
 * the database time of the last moment it was known to be listening, so
 * subscribers can catch up from the database.
 *
 * Each notification is parsed once (./topics.ts), with the protocol's one
 * parser (./protocol.ts), however many handlers its channel has: handlers get
 * it decoded, and a malformed payload is logged once and reaches none of them.
 */

export interface ListenerOptions {
  connectionString: string;
  logger: Logger;
  heartbeatIntervalMs?: number;
  heartbeatTimeoutMs?: number;
  backoff?: BackoffPolicy;
  /**
   * Sets the database's realtime_settings to postgres on every connect, so the
   * triggers pg_notify (./transport-mode.ts). The app's transport does; a
   * listener made on the side (tests, tools) leaves the setting alone.
   */
  claimMode?: boolean;
}

export class PgListener extends EventEmitter<TransportEvents> implements RealtimeTransport {
  readonly kind = "postgres";
  /** Topics with their handlers: what should be LISTENed. */
  private readonly wanted: Topics;
  /** Topics the current connection LISTENs to. */
  private readonly listening = new Set<string>();
  /** The current connection, from the moment it is open (it may still be setting up). */
  private client: pg.Client | undefined;
  /** The current connection has LISTENed to what was wanted and read the database time. */
  private ready = false;
  /** The current connection's queries, one at a time. */
  private chain: Promise<void> = Promise.resolve();
  private readonly options: Required<Omit<ListenerOptions, "logger" | "connectionString" | "claimMode">> & ListenerOptions;
  private readonly backoff: Backoff;
  private connecting: Promise<void> | undefined;
  private heartbeat: NodeJS.Timeout | undefined;
  private retryTimer: NodeJS.Timeout | undefined;
  private closed = false;
  /** Database time of the last successful heartbeat or connect. */
  private healthy: Date | undefined;
  private everConnected = false;

  constructor(options: ListenerOptions) {
    super();
    this.options = {
      heartbeatIntervalMs: 5000,
      heartbeatTimeoutMs: 3000,
      backoff: { initialMs: 100, maxMs: 10_000 },
      ...options,
    };
    this.backoff = new Backoff(this.options.backoff);
    this.wanted = new Topics(options.logger);
  }

  /** Up, listening to everything wanted when it came up, and heartbeating. */
  get connected(): boolean {
    return this.ready;
  }

  /** Number of distinct topics wanted now. */
  get topicCount(): number {
    return this.wanted.size;
  }

  /**
   * Database time up to which every notification is known to have arrived
   * (the last heartbeat); undefined before the first connect.
   */
  get healthyAt(): Date | undefined {
    return this.healthy;
  }

  /** Starts the connection; resolves once it listens (or rejects on the first failure, then keeps retrying). */
  async start(): Promise<void> {
    await this.connect();
  }

  /**
   * Registers a handler on a topic (several per topic are fine). Resolves
   * once the LISTEN is in place, so a caller that then reads the database
   * cannot miss a later commit. While the connection is down it resolves at
   * once: the reconnect LISTENs, and "reconnected" tells subscribers to catch up.
   */
  async listen(topic: string, handler: NotificationHandler): Promise<() => Promise<void>> {
    const remove = this.wanted.add(topic, handler);
    await this.reconcile();
    return async () => {
      if (remove()) await this.reconcile();
    };
  }

  async close(): Promise<void> {
    this.closed = true;
    clearInterval(this.heartbeat);
    clearTimeout(this.retryTimer);
    const client = this.client;
    this.client = undefined;
    this.ready = false;
    await client?.end().catch(() => {});
  }

  /**
   * Brings the connection's LISTENs in line with what is wanted at the moment
   * it runs (not when it was asked for): one statement for all the changes,
   * queued behind whatever the connection is doing. Without a connection
   * there is nothing to do; the next connection reconciles first thing.
   */
  private reconcile(): Promise<void> {
    const client = this.client;
    if (!client) return Promise.resolve();
    return this.enqueue(client, async () => {
      if (this.client !== client) return;
      const add = this.wanted.names().filter((topic) => !this.listening.has(topic));
      const remove = [...this.listening].filter((topic) => !this.wanted.has(topic));
      if (add.length === 0 && remove.length === 0) return;
      const statements = [...add.map((topic) => `LISTEN ${quoteIdent(topic)}`), ...remove.map((topic) => `UNLISTEN ${quoteIdent(topic)}`)];
      await client.query(statements.join("; "));
      for (const topic of add) this.listening.add(topic);
      for (const topic of remove) this.listening.delete(topic);
    }).catch((error: unknown) => {
      this.options.logger.warn({ err: error }, "LISTEN/UNLISTEN failed; reconnecting");
      this.dropConnection(client);
    });
  }

  /**
   * pg queues queries on a client but deprecates issuing one while another
   * runs; LISTEN, UNLISTEN and heartbeats share one connection, so they take turns.
   */
  private enqueue<T>(client: pg.Client, work: () => Promise<T>): Promise<T> {
    const result = this.chain.then(async () => {
      if (this.client !== client) throw new Error("the listener connection was replaced");
      return work();
    });
    this.chain = result.then(
      () => {},
      () => {},
    );
    return result;
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
    client.on("notification", (message) => this.dispatch(message));
    try {
      await client.connect();
      if (this.closed) {
        await client.end().catch(() => {});
        return;
      }
      // From here on every listen() and unlisten reconciles on this connection,
      // in turn with the reconcile below: a topic added at any point is covered.
      this.client = client;
      this.listening.clear();
      this.chain = Promise.resolve();
      if (this.options.claimMode) await this.enqueue(client, () => claimTransport(client, "postgres", this.options.logger));
      await this.reconcile();
      const { rows } = await this.enqueue(client, () => client.query<{ now: Date }>("SELECT now() AS now"));
      if (this.client !== client) throw new Error("the listener connection dropped while it was setting up");
      const since = this.healthy;
      this.healthy = rows[0]?.now;
      this.ready = true;
      this.backoff.reset();
      this.startHeartbeat(client);
      // Subscribers may have joined while the connection was down (or before it
      // first came up): they catch up from the database either way.
      if (this.everConnected || this.wanted.size > 0) {
        this.options.logger.info({ topics: this.wanted.size }, "listener connected; subscribers catch up");
        this.emit("reconnected", { since: since ?? new Date(0) });
      }
      this.everConnected = true;
    } catch (error) {
      if (this.client === client) {
        this.dropConnection(client);
      } else {
        await client.end().catch(() => {});
        this.scheduleReconnect();
      }
      throw error;
    }
  }

  private dispatch(message: pg.Notification): void {
    if (message.payload === undefined) return;
    this.wanted.dispatch(message.channel, message.payload);
  }

  private startHeartbeat(client: pg.Client): void {
    clearInterval(this.heartbeat);
    this.heartbeat = setInterval(() => {
      const timeout = setTimeout(() => {
        this.options.logger.warn("listener heartbeat timed out");
        this.dropConnection(client);
      }, this.options.heartbeatTimeoutMs);
      this.enqueue(client, () => client.query<{ now: Date }>("SELECT now() AS now"))
        .then(({ rows }) => {
          if (this.client === client) this.healthy = rows[0]?.now ?? this.healthy;
        })
        .catch(() => this.dropConnection(client))
        .finally(() => clearTimeout(timeout));
    }, this.options.heartbeatIntervalMs);
    this.heartbeat.unref();
  }

  private dropConnection(client: pg.Client): void {
    if (this.client !== client) return;
    const wasReady = this.ready;
    this.client = undefined;
    this.ready = false;
    this.listening.clear();
    clearInterval(this.heartbeat);
    // Destroys the socket even when the peer is unreachable (half-open).
    (client as unknown as { connection?: { stream?: { destroy(): void } } }).connection?.stream?.destroy();
    client.end().catch(() => {});
    if (this.closed) return;
    this.options.logger.warn("listener connection lost; reconnecting");
    if (wasReady) this.emit("down");
    this.scheduleReconnect();
  }

  private scheduleReconnect(): void {
    if (this.closed || this.retryTimer) return;
    const delay = this.backoff.next();
    this.retryTimer = setTimeout(() => {
      this.retryTimer = undefined;
      this.connect().catch((error: unknown) => {
        this.options.logger.warn({ err: error, attempt: this.backoff.attempts }, "listener reconnect failed");
      });
    }, delay);
    this.retryTimer.unref();
  }
}

function quoteIdent(name: string): string {
  return `"${name.replaceAll('"', '""')}"`;
}
