import type { Db } from "../db/client.js";
import type { BackoffPolicy } from "../lib/backoff.js";
import { EventEmitter } from "node:events";
import type { Logger } from "../lib/logger.js";
import { PgListener } from "./listener.js";
import type { NatsTransport, NatsTransportOptions } from "./nats-transport.js";
import type { OutboxRelay, RelayTuning } from "./outbox-relay.js";
import type { NotificationHandler, RealtimeTransport, TransportEvents, TransportSettings } from "./transport.js";

export interface TransportOptions {
  settings: TransportSettings;
  /** DIRECT_URL: the LISTEN connection (postgres), the relay's session (nats). */
  connectionString: string;
  logger: Logger;
  /** For the snapshots the nats transport takes when it starts listening to a topic. */
  db: Db;
  /** How often the connection proves it is alive (SELECT now() on LISTEN; NATS pings). */
  heartbeatIntervalMs?: number;
  heartbeatTimeoutMs?: number;
  backoff?: BackoffPolicy;
  /** The nats relay's timings (tests shorten them). */
  relay?: Partial<RelayTuning>;
}

/** The app's transport, as REALTIME_TRANSPORT says; it claims the database's trigger mode (./transport-mode.ts). */
export function createTransport(options: TransportOptions): RealtimeTransport {
  const { settings, connectionString, logger } = options;
  if (settings.kind === "nats") {
    return new DeferredNatsTransport({
      settings,
      connectionString,
      logger,
      heartbeatIntervalMs: options.heartbeatIntervalMs,
      backoff: options.backoff,
      relay: options.relay,
      snapshot: async () => {
        const [row] = await options.db.$queryRaw<{ snapshot: string }[]>`SELECT pg_current_snapshot()::text AS snapshot`;
        return row?.snapshot ?? "";
      },
    });
  }
  return new PgListener({
    connectionString,
    logger,
    claimMode: true,
    ...(options.heartbeatIntervalMs === undefined ? {} : { heartbeatIntervalMs: options.heartbeatIntervalMs }),
    ...(options.heartbeatTimeoutMs === undefined ? {} : { heartbeatTimeoutMs: options.heartbeatTimeoutMs }),
    ...(options.backoff === undefined ? {} : { backoff: options.backoff }),
  });
}

/**
 * The nats transport, its module and the NATS client (some 400 kB of JavaScript) loaded when it
 * is first used: a server on the default postgres transport never loads them, and one on nats
 * loads them while it starts rather than before its database is up.
 */
export class DeferredNatsTransport extends EventEmitter<TransportEvents> implements RealtimeTransport {
  readonly kind = "nats";
  private inner: NatsTransport | undefined;
  private loading: Promise<NatsTransport> | undefined;

  constructor(private readonly options: NatsTransportOptions) {
    super();
  }

  get connected(): boolean {
    return this.inner?.connected ?? false;
  }

  get topicCount(): number {
    return this.inner?.topicCount ?? 0;
  }

  get healthyAt(): Date | undefined {
    return this.inner?.healthyAt;
  }

  /** The relay candidate this instance runs (tests watch its leadership); there once started. */
  get relay(): OutboxRelay {
    if (!this.inner) throw new Error("the nats transport has not started");
    return this.inner.relay;
  }

  async start(): Promise<void> {
    await (await this.load()).start();
  }

  async listen(topic: string, handler: NotificationHandler): Promise<() => Promise<void>> {
    return (await this.load()).listen(topic, handler);
  }

  async close(): Promise<void> {
    // Never loaded: nothing connected.
    if (!this.loading) return;
    await (await this.loading).close();
  }

  private load(): Promise<NatsTransport> {
    this.loading ??= import("./nats-transport.js").then(({ NatsTransport }) => {
      const inner = new NatsTransport(this.options);
      inner.on("reconnected", (info) => this.emit("reconnected", info));
      inner.on("down", () => this.emit("down"));
      this.inner = inner;
      return inner;
    });
    return this.loading;
  }
}
