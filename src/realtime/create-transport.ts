import type { Db } from "../db/client.js";
import type { BackoffPolicy } from "../lib/backoff.js";
import type { Logger } from "../lib/logger.js";
import { PgListener } from "./listener.js";
import { NatsTransport } from "./nats-transport.js";
import type { RelayTuning } from "./outbox-relay.js";
import type { RealtimeTransport, TransportSettings } from "./transport.js";

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
    return new NatsTransport({
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
