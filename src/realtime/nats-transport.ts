import { EventEmitter } from "node:events";
import { connect, type Msg, type NatsConnection, type Subscription } from "@nats-io/transport-node";
import pg from "pg";
import { Backoff, type BackoffPolicy } from "../lib/backoff.js";
import type { Logger } from "../lib/logger.js";
import { natsNames, XACT_HEADER, type NatsNames } from "./nats-subjects.js";
import { OutboxRelay, type RelayTuning } from "./outbox-relay.js";
import { RecentIds } from "./recent-ids.js";
import { Topics } from "./topics.js";
import type { NatsSettings, NotificationHandler, RealtimeTransport, TransportEvents } from "./transport.js";
import { claimTransport } from "./transport-mode.js";
import { XactSnapshot } from "./xact-snapshot.js";

/**
 * The nats transport (./transport.ts), REALTIME_TRANSPORT=nats. The triggers
 * write wake-ups to an outbox in the writing transaction; one relay per
 * database publishes them (./outbox-relay.ts; every instance runs a
 * candidate); every instance subscribes here.
 *
 * Subscribers use core NATS subscriptions, one per user channel this instance
 * serves, not a JetStream consumer: Postgres is the history, so what a
 * subscriber needs of NATS is the live flow with interest-based routing (an
 * instance receives only its users' wake-ups), and a way to know when it may
 * have missed some. A core subscription has no server-side state to lose when
 * NATS restarts and no pull round trip. Whenever the connection comes back,
 * "reconnected" makes every subscriber catch up from the database, exactly as
 * the postgres transport does after a LISTEN outage: a lost wake-up never
 * loses data. Duplicates (a row the relay published twice) are dropped by
 * message id (./recent-ids.ts), and so is the late wake-up of a commit that a
 * topic's subscription had already seen when it started (./xact-snapshot.ts),
 * which LISTEN would never have heard.
 *
 * healthyAt comes from the relay's ticks: each carries the database time up
 * to which every outbox row was published before it, and NATS keeps one
 * publisher's messages in order, so a tick heard means every earlier wake-up
 * of this instance's subscriptions was heard too.
 */

export interface NatsTransportOptions {
  settings: NatsSettings;
  /** DIRECT_URL: the relay's session (its advisory lock) and the transport claim. */
  connectionString: string;
  logger: Logger;
  /** NATS pings this often; two unanswered mean a dead connection. */
  heartbeatIntervalMs?: number;
  /** Between attempts of the first connection (the client reconnects by itself after that). */
  backoff?: BackoffPolicy;
  relay?: Partial<RelayTuning>;
  /**
   * pg_current_snapshot() as text, read when a topic is first listened to: its
   * wake-ups of transactions that snapshot saw are dropped (./xact-snapshot.ts).
   * Without it every wake-up is delivered.
   */
  snapshot?: () => Promise<string>;
}

/** Message ids remembered for dropping duplicates. */
const RECENT_IDS = 8192;
/** Wake-ups held per topic while its snapshot is read. */
const HELD_LIMIT = 1000;

export class NatsTransport extends EventEmitter<TransportEvents> implements RealtimeTransport {
  readonly kind = "nats";
  readonly relay: OutboxRelay;
  private readonly names: NatsNames;
  private readonly wanted: Topics;
  private readonly subscriptions = new Map<string, Subscription>();
  /** Per topic: its subscription and snapshot being set up, then done. */
  private readonly setups = new Map<string, Promise<void>>();
  private readonly snapshots = new Map<string, XactSnapshot>();
  /** Wake-ups of topics whose snapshot is being read: filtered by it once it is known. */
  private readonly held = new Map<string, Msg[]>();
  private readonly recent = new RecentIds(RECENT_IDS);
  private readonly backoff: Backoff;
  private nc: NatsConnection | undefined;
  private ready = false;
  private healthy: Date | undefined;
  private claimed = false;
  private everConnected = false;
  private closed = false;
  private connecting: Promise<void> | undefined;
  private retryTimer: NodeJS.Timeout | undefined;

  constructor(private readonly options: NatsTransportOptions) {
    super();
    this.names = natsNames(options.settings.subjectPrefix);
    this.wanted = new Topics(options.logger);
    this.backoff = new Backoff(options.backoff ?? { initialMs: 100, maxMs: 10_000 });
    this.relay = new OutboxRelay({
      ...options.relay,
      connectionString: options.connectionString,
      logger: options.logger,
      names: this.names,
      nats: () => (this.ready ? this.nc : undefined),
    });
  }

  get connected(): boolean {
    return this.ready;
  }

  get topicCount(): number {
    return this.wanted.size;
  }

  get healthyAt(): Date | undefined {
    return this.healthy;
  }

  async start(): Promise<void> {
    this.relay.start();
    await this.connect();
  }

  async listen(topic: string, handler: NotificationHandler): Promise<() => Promise<void>> {
    const remove = this.wanted.add(topic, handler);
    let setup = this.setups.get(topic);
    if (!setup) {
      setup = this.setUp(topic);
      this.setups.set(topic, setup);
    }
    // Every listener of a topic waits for the same snapshot: each reads its starting point after it.
    await setup;
    return async () => {
      if (!remove()) return;
      this.subscriptions.get(topic)?.unsubscribe();
      this.subscriptions.delete(topic);
      this.setups.delete(topic);
      this.snapshots.delete(topic);
    };
  }

  /** Subscribes a new topic, then reads the snapshot its wake-ups are filtered by (holding them meanwhile). */
  private async setUp(topic: string): Promise<void> {
    if (!this.options.snapshot) {
      await this.subscribeNew(topic);
      return;
    }
    this.held.set(topic, []);
    try {
      await this.subscribeNew(topic);
      await this.readSnapshot(topic, this.options.snapshot);
    } finally {
      const held = this.held.get(topic) ?? [];
      this.held.delete(topic);
      for (const msg of held) this.onWakeUp(topic, msg);
    }
  }

  private async subscribeNew(topic: string): Promise<void> {
    const nc = this.nc;
    if (nc) {
      this.subscribe(nc, topic);
      // The server has the subscription once it answers a ping sent after it.
      if (this.ready) await nc.flush().catch(() => {});
    }
  }

  private async readSnapshot(topic: string, read: () => Promise<string>): Promise<void> {
    try {
      // Only now: a commit this snapshot does not see is published after the subscription is in place.
      const snapshot = XactSnapshot.parse(await read());
      if (snapshot && this.wanted.has(topic)) this.snapshots.set(topic, snapshot);
    } catch (error) {
      this.options.logger.warn({ err: error }, "could not read a snapshot for a new topic; its wake-ups are not filtered");
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.retryTimer);
    this.ready = false;
    await this.relay.close();
    const nc = this.nc;
    this.nc = undefined;
    await nc?.close().catch(() => {});
  }

  private connect(): Promise<void> {
    this.connecting ??= this.openConnection().finally(() => {
      this.connecting = undefined;
    });
    return this.connecting;
  }

  private async openConnection(): Promise<void> {
    try {
      if (!this.claimed) await this.claim();
      const nc = await connect({
        servers: this.options.settings.servers,
        name: "todo-api",
        maxReconnectAttempts: -1,
        reconnectTimeWait: 250,
        reconnectJitter: 100,
        pingInterval: this.options.heartbeatIntervalMs ?? 5000,
        maxPingOut: 2,
        timeout: 5000,
      });
      if (this.closed) {
        await nc.close().catch(() => {});
        return;
      }
      this.nc = nc;
      this.subscriptions.clear();
      this.subscribeControl(nc);
      for (const topic of this.wanted.names()) this.subscribe(nc, topic);
      await nc.flush();
      this.up(nc, !this.everConnected && this.wanted.size === 0);
      this.everConnected = true;
      void this.watch(nc);
    } catch (error) {
      this.scheduleReconnect();
      throw error;
    }
  }

  /** The triggers write the outbox from here on (./transport-mode.ts). */
  private async claim(): Promise<void> {
    const client = new pg.Client({
      connectionString: this.options.connectionString,
      application_name: "todo-api-nats",
      connectionTimeoutMillis: 10_000,
    });
    client.on("error", () => {});
    try {
      await client.connect();
      await claimTransport(client, "nats", this.options.logger);
      this.claimed = true;
    } finally {
      await client.end().catch(() => {});
    }
  }

  /** Up with every wanted topic subscribed: subscribers catch up, unless this is a first start nobody waited for. */
  private up(nc: NatsConnection, quiet: boolean): void {
    if (this.nc !== nc || this.closed) return;
    this.ready = true;
    this.backoff.reset();
    if (quiet) return;
    this.options.logger.info({ topics: this.wanted.size }, "nats transport connected; subscribers catch up");
    this.emit("reconnected", { since: this.healthy ?? new Date(0) });
  }

  /** The client reconnects by itself (subscriptions included); this follows it, and replaces a connection that closed. */
  private async watch(nc: NatsConnection): Promise<void> {
    void nc.closed().then(() => this.lost(nc));
    for await (const status of nc.status()) {
      if (status.type === "disconnect") this.down(nc);
      if (status.type === "reconnect") {
        await nc.flush().catch(() => {});
        this.up(nc, false);
      }
    }
  }

  private down(nc: NatsConnection): void {
    if (this.nc !== nc || !this.ready) return;
    this.ready = false;
    this.options.logger.warn("nats connection lost; reconnecting");
    this.emit("down");
  }

  private lost(nc: NatsConnection): void {
    this.down(nc);
    if (this.nc !== nc || this.closed) return;
    this.nc = undefined;
    this.scheduleReconnect();
  }

  private subscribe(nc: NatsConnection, topic: string): void {
    const subscription = nc.subscribe(this.names.subjectOf(topic), { callback: (_error, msg) => this.onWakeUp(topic, msg) });
    this.subscriptions.set(topic, subscription);
  }

  private onWakeUp(topic: string, msg: Msg): void {
    const held = this.held.get(topic);
    // Bounded by what arrives during one snapshot query; past the bound they go out unfiltered, never lost.
    if (held && held.length < HELD_LIMIT) {
      held.push(msg);
      return;
    }
    const xact = msg.headers?.get(XACT_HEADER);
    if (xact && this.snapshots.get(topic)?.saw(xact)) return;
    const id = msg.headers?.get("Nats-Msg-Id");
    if (id && this.recent.seen(id)) return;
    this.wanted.dispatch(topic, msg.string());
  }

  /** The relay's ticks (healthyAt) and resync markers (catch up: wake-ups were pruned unpublished). */
  private subscribeControl(nc: NatsConnection): void {
    nc.subscribe(this.names.tick, {
      callback: (_error, msg) => {
        const at = timeOf(msg);
        if (at && (this.healthy === undefined || at > this.healthy)) this.healthy = at;
      },
    });
    nc.subscribe(this.names.resync, {
      callback: (_error, msg) => {
        const at = timeOf(msg);
        if (!at) return;
        this.options.logger.warn("the relay pruned wake-ups it could not publish; subscribers catch up");
        this.emit("reconnected", { since: this.healthy && this.healthy < at ? this.healthy : at });
      },
    });
  }

  private scheduleReconnect(): void {
    if (this.closed || this.retryTimer) return;
    const delay = this.backoff.next();
    this.retryTimer = setTimeout(() => {
      this.retryTimer = undefined;
      this.connect().catch((error: unknown) => {
        this.options.logger.warn({ err: error, attempt: this.backoff.attempts }, "nats connection failed; retrying");
      });
    }, delay);
    this.retryTimer.unref();
  }
}

/** The database time a tick or resync carries ({"t": ISO 8601}), or undefined for anything else. */
function timeOf(msg: Msg): Date | undefined {
  try {
    const value = (JSON.parse(msg.string()) as { t?: unknown }).t;
    const at = typeof value === "string" ? new Date(value) : undefined;
    return at && !Number.isNaN(at.getTime()) ? at : undefined;
  } catch {
    return undefined;
  }
}
