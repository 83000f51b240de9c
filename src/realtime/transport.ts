import type { EventEmitter } from "node:events";
import type { Notification } from "./protocol.js";

/**
 * How wake-ups travel from the database to this process's subscribers: the
 * one thing the hub, the feeds and the assistant know of it. Postgres is the
 * truth and the transport carries only wake-ups (ids, a seq, never row data):
 * whoever hears one re-reads the rows under the user's scope, and a wake-up
 * lost in an outage is made good by "reconnected", after which subscribers
 * catch up from the database. Two implementations, chosen by
 * REALTIME_TRANSPORT:
 *
 * - postgres (./listener.ts): triggers pg_notify, one LISTEN connection per
 *   process. The default.
 * - nats (./nats-transport.ts): triggers write an outbox row in the same
 *   transaction, one relay per database publishes it to JetStream
 *   (./outbox-relay.ts), and each process subscribes to its users' subjects.
 *
 * Which one the triggers feed is a row of the database (realtime_settings),
 * set by the transport at start (./transport-mode.ts).
 */

export type TransportKind = "postgres" | "nats";

export type NotificationHandler = (notification: Notification) => void;

export interface ReconnectInfo {
  /** Database time up to which every wake-up is known to have arrived. */
  since: Date;
}

export interface TransportEvents {
  /** Back after an outage (or up for the first time with topics wanted): subscribers catch up from `since`. */
  reconnected: [ReconnectInfo];
  /** Lost: wake-ups may be missed until "reconnected". */
  down: [];
}

export interface RealtimeTransport extends EventEmitter<TransportEvents> {
  readonly kind: TransportKind;
  /** Up and receiving every topic wanted; /ready reports it. */
  readonly connected: boolean;
  /** Number of distinct topics wanted now. */
  readonly topicCount: number;
  /**
   * Database time up to which every wake-up is known to have arrived;
   * undefined before the first one is known. Only moves forward.
   */
  readonly healthyAt: Date | undefined;
  /** Connects; resolves once up (or rejects on the first failure, then keeps retrying). */
  start(): Promise<void>;
  /**
   * Registers a handler on a topic (a user's channel, protocol.userChannel).
   * Resolves once wake-ups of that topic reach it, so a caller that then reads
   * the database cannot miss a later commit; while the transport is down it
   * resolves at once, and "reconnected" tells subscribers to catch up.
   * Returns the handler's removal.
   */
  listen(topic: string, handler: NotificationHandler): Promise<() => Promise<void>>;
  close(): Promise<void>;
}

/** What a transport needs to be built, from the configuration. */
export type TransportSettings = { kind: "postgres" } | NatsSettings;

export interface NatsSettings {
  kind: "nats";
  /** NATS_URL: one server, or several separated by commas (a cluster's seeds). */
  servers: string[];
  /** NATS_SUBJECT_PREFIX: every subject this deployment uses starts with it (and a dot). */
  subjectPrefix: string;
}
