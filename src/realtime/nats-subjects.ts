import { DiscardPolicy, RetentionPolicy, StorageType, type JetStreamManager, type StreamConfig } from "@nats-io/jetstream";
import { nanos } from "@nats-io/transport-node";

/**
 * The names the nats transport uses under NATS_SUBJECT_PREFIX (say
 * "todo.realtime"):
 *
 * - <prefix>.u.<channel>: one user's wake-ups, <channel> being the user's
 *   channel (protocol.userChannel: 'todo_u_' || md5(user id), so no raw user
 *   id reaches NATS). Published by the relay from the outbox, through
 *   JetStream; each instance subscribes to the users it serves.
 * - <prefix>.resync: left by the relay when it pruned wake-ups it could not
 *   publish in time; every instance catches up from the database.
 * - <prefix>.tick: the relay's watermark, a core publish (not stored): "every
 *   outbox row visible at database time t has been published before this".
 *
 * The stream <PREFIX>_WAKEUPS (dots as underscores, upper case) stores the
 * first two. Nobody reads it back (Postgres is the history): it is there for
 * the publish ack, which tells the relay a row may be deleted, and for its
 * duplicate window, which drops a row published again under the same id.
 * Memory storage and a short age keep it small.
 */

export const RESYNC_CHANNEL = "resync";

/** The header that carries a wake-up's writing transaction id (realtime_outbox.xact_id). */
export const XACT_HEADER = "Todo-Xact";

export interface NatsNames {
  stream: string;
  /** The subject of an outbox row's channel (a user's, or RESYNC_CHANNEL). */
  subjectOf(channel: string): string;
  tick: string;
  resync: string;
  streamSubjects: string[];
}

export function natsNames(prefix: string): NatsNames {
  return {
    stream: `${prefix.replaceAll(".", "_").toUpperCase()}_WAKEUPS`,
    subjectOf: (channel) => (channel === RESYNC_CHANNEL ? `${prefix}.resync` : `${prefix}.u.${channel}`),
    tick: `${prefix}.tick`,
    resync: `${prefix}.resync`,
    streamSubjects: [`${prefix}.u.*`, `${prefix}.resync`],
  };
}

/** A wake-up is worth nothing after a few minutes: subscribers that missed it have caught up from the rows. */
const STREAM_MAX_AGE_MS = 10 * 60_000;
/** How long a republished outbox id is recognised (JetStream's default). */
const DUPLICATE_WINDOW_MS = 2 * 60_000;
const STREAM_MAX_BYTES = 64 * 1024 * 1024;

function streamConfig(names: NatsNames): Partial<StreamConfig> & { name: string } {
  return {
    name: names.stream,
    subjects: names.streamSubjects,
    storage: StorageType.Memory,
    retention: RetentionPolicy.Limits,
    discard: DiscardPolicy.Old,
    max_age: nanos(STREAM_MAX_AGE_MS),
    duplicate_window: nanos(DUPLICATE_WINDOW_MS),
    max_bytes: STREAM_MAX_BYTES,
    num_replicas: 1,
  };
}

/** Creates the stream, or brings an existing one's subjects and limits in line. */
export async function ensureStream(jsm: JetStreamManager, names: NatsNames): Promise<void> {
  const config = streamConfig(names);
  try {
    await jsm.streams.info(names.stream);
  } catch {
    await jsm.streams.add(config);
    return;
  }
  const { storage: _storage, ...changeable } = config;
  await jsm.streams.update(names.stream, changeable);
}

/** The channel of a row is the trigger's todo_realtime_channel(); anything else cannot be a subject token. */
export function isPublishableChannel(channel: string): boolean {
  return channel === RESYNC_CHANNEL || /^todo_u_[0-9a-f]{32}$/.test(channel);
}
