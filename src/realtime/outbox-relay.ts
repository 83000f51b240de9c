import { setTimeout as sleep } from "node:timers/promises";
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import { headers, type NatsConnection } from "@nats-io/transport-node";
import pg from "pg";
import { Backoff } from "../lib/backoff.js";
import type { Logger } from "../lib/logger.js";
import { ensureStream, isPublishableChannel, XACT_HEADER, type NatsNames } from "./nats-subjects.js";

/**
 * Drains realtime_outbox into NATS: exactly one relay at a time per database,
 * whichever instance holds the advisory lock. Every nats instance runs a
 * candidate on a session connection of its own (DIRECT_URL: a transaction
 * pooler cannot hold a session lock) that tries the lock every lockRetryMs.
 * The lock goes with the session, so a leader that dies (its socket closes)
 * frees it at once, and one that hangs or is cut off is ended by Postgres
 * after idle_session_timeout (it queries every pollMs while it is well): a
 * candidate takes over within about lockRetryMs of either.
 *
 * The leader reads rows in id order, publishes them through JetStream with
 * the row's id as the message id (a row published twice, by a leader that
 * died between publish and delete, or by the next one, is stored once), and
 * deletes each row once its publish is acknowledged. When a read left nothing
 * behind it publishes a tick (at most every tickMs) with the read's database
 * time: the watermark subscribers take as healthyAt. Rows older than maxAgeMs
 * (NATS unreachable for that long) are pruned, leaving one resync marker that
 * makes every subscriber catch up from the database once it is published: the
 * outbox stays bounded whatever is written while NATS is away.
 */

export interface RelayTuning {
  /** Between reads while the outbox is empty. */
  pollMs: number;
  /** Rows read (and published) at a time. */
  batch: number;
  /** At most one tick this often. */
  tickMs: number;
  /** A candidate tries the lock this often. */
  lockRetryMs: number;
  /** Postgres ends the leader's session when it says nothing for this long, which frees the lock. */
  idleSessionTimeoutMs: number;
  /** Rows this old are pruned (and replaced by a resync marker). */
  maxAgeMs: number;
  /** How long a publish waits for its ack. */
  publishTimeoutMs: number;
}

export const DEFAULT_RELAY_TUNING: RelayTuning = {
  pollMs: 10,
  batch: 500,
  tickMs: 1000,
  lockRetryMs: 500,
  idleSessionTimeoutMs: 4000,
  maxAgeMs: 5 * 60_000,
  publishTimeoutMs: 2000,
};

export interface RelayOptions extends Partial<RelayTuning> {
  connectionString: string;
  logger: Logger;
  names: NatsNames;
  /** The instance's NATS connection, while it is up. */
  nats: () => NatsConnection | undefined;
}

interface OutboxRow {
  id: string;
  channel: string;
  payload: string;
  /** The writing transaction's id, as text. */
  xactId: string;
  createdAt: Date;
}

/** One read: the rows and the database time it saw them at. */
interface Batch {
  at: Date;
  rows: OutboxRow[];
}

/** Any fixed number will do: it names the lock, per database. */
const LOCK_SQL = "SELECT pg_try_advisory_lock(hashtext('todo_realtime_relay')) AS got";

export class OutboxRelay {
  private readonly tuning: RelayTuning;
  private readonly stop = new AbortController();
  private loop: Promise<void> | undefined;
  private client: pg.Client | undefined;
  private leader = false;
  private streamReady = false;
  private lastTick = 0;
  private published = 0;

  constructor(private readonly options: RelayOptions) {
    this.tuning = { ...DEFAULT_RELAY_TUNING, ...definedOnly(options) };
  }

  /** Whether this instance holds the lock now. */
  get leading(): boolean {
    return this.leader;
  }

  /** Rows this instance has published and deleted. */
  get publishedCount(): number {
    return this.published;
  }

  start(): void {
    this.loop ??= this.run();
  }

  async close(): Promise<void> {
    this.stop.abort();
    await this.client?.end().catch(() => {});
    await this.loop;
  }

  /** Sessions, one after another, with backoff between failed ones, until closed. */
  private async run(): Promise<void> {
    const backoff = new Backoff({ initialMs: 100, maxMs: 5000 });
    while (!this.stop.signal.aborted) {
      try {
        await this.session();
        backoff.reset();
      } catch (error) {
        if (this.stop.signal.aborted) break;
        this.options.logger.warn({ err: error, wasLeader: this.leader }, "outbox relay session failed; starting another");
      } finally {
        this.leader = false;
        await this.client?.end().catch(() => {});
        this.client = undefined;
      }
      await this.pause(backoff.next());
    }
  }

  /** One session: a candidate until it gets the lock, then the leader until the session ends. */
  private async session(): Promise<void> {
    const client = new pg.Client({
      connectionString: this.options.connectionString,
      application_name: "todo-api-relay",
      keepAlive: true,
      connectionTimeoutMillis: 10_000,
    });
    // A broken session surfaces as its next query's error.
    client.on("error", () => {});
    this.client = client;
    await client.connect();
    await client.query(`SET idle_session_timeout = ${Math.round(this.tuning.idleSessionTimeoutMs)}`).catch((error: unknown) => {
      // Postgres before 14: a hung leader then keeps the lock until its connection drops.
      this.options.logger.warn({ err: error }, "outbox relay: idle_session_timeout not available");
    });
    while (!this.stop.signal.aborted) {
      const { rows } = await client.query<{ got: boolean }>(LOCK_SQL);
      if (rows[0]?.got) {
        this.leader = true;
        this.streamReady = false;
        this.options.logger.info("outbox relay: this instance leads");
        await this.lead(client);
        return;
      }
      await this.pause(this.tuning.lockRetryMs);
    }
  }

  private async lead(client: pg.Client): Promise<void> {
    while (!this.stop.signal.aborted) {
      const more = await this.drain(client);
      if (!more) await this.pause(this.tuning.pollMs);
    }
  }

  /** One read, published and deleted. True when more rows may be waiting already. */
  private async drain(client: pg.Client): Promise<boolean> {
    const batch = await readBatch(client, this.tuning.batch);
    const oldest = batch.rows[0];
    if (oldest && batch.at.getTime() - oldest.createdAt.getTime() > this.tuning.maxAgeMs) {
      await this.prune(client, new Date(batch.at.getTime() - this.tuning.maxAgeMs));
      return true;
    }
    const nc = this.options.nats();
    if (!nc) return false;
    if (!this.streamReady) {
      await ensureStream(await jetstreamManager(nc, { timeout: this.tuning.publishTimeoutMs }), this.options.names);
      this.streamReady = true;
    }
    const done = await this.publish(nc, batch.rows);
    if (done.length > 0) await client.query(`DELETE FROM "realtime_outbox" WHERE "id" = ANY($1::bigint[])`, [done]);
    this.published += done.length;
    const all = done.length === batch.rows.length;
    if (all && batch.rows.length < this.tuning.batch) this.tick(nc, batch.at);
    return all && batch.rows.length === this.tuning.batch;
  }

  /**
   * Publishes the rows in id order, pipelined (one connection keeps them in
   * order); returns the ids that may be deleted: acknowledged, or not
   * publishable at all (a channel that is not a user's).
   */
  private async publish(nc: NatsConnection, rows: readonly OutboxRow[]): Promise<string[]> {
    const js = jetstream(nc, { timeout: this.tuning.publishTimeoutMs });
    const { names, logger } = this.options;
    const results = await Promise.allSettled(
      rows.map(async (row) => {
        if (!isPublishableChannel(row.channel)) {
          logger.warn({ id: row.id }, "outbox row with a channel that is not a user's; dropped");
          return;
        }
        const h = headers();
        h.set(XACT_HEADER, row.xactId);
        await js.publish(names.subjectOf(row.channel), row.payload, { msgID: row.id, headers: h });
      }),
    );
    const failed = results.filter((result) => result.status === "rejected");
    if (failed.length > 0) {
      // The stream may be gone (a NATS restart loses a memory stream): make sure of it before the next try.
      this.streamReady = false;
      logger.warn({ failed: failed.length, of: rows.length, err: (failed[0] as PromiseRejectedResult).reason }, "outbox publish failed; retrying");
    }
    return rows.filter((_row, index) => results[index]?.status === "fulfilled").map((row) => row.id);
  }

  private tick(nc: NatsConnection, at: Date): void {
    const now = Date.now();
    if (now - this.lastTick < this.tuning.tickMs) return;
    this.lastTick = now;
    nc.publish(this.options.names.tick, JSON.stringify({ t: at.toISOString() }));
  }

  /**
   * Deletes rows older than `before`, and any earlier resync marker, and
   * leaves one marker in their place that goes back as far as all of them: one
   * statement, so a marker never goes missing, and never more than one.
   */
  private async prune(client: pg.Client, before: Date): Promise<void> {
    const { rows } = await client.query<{ pruned: string }>(
      `WITH gone AS (
              DELETE FROM "realtime_outbox" WHERE "created_at" < $1 OR "channel" = 'resync'
              RETURNING "channel", CASE WHEN "channel" = 'resync' THEN ("payload"::json ->> 't')::timestamptz ELSE "created_at" END AS since
            ),
            marker AS (
              INSERT INTO "realtime_outbox" ("channel", "payload", "xact_id")
              SELECT 'resync', json_build_object('k', 'resync', 't', min(since))::text, pg_current_xact_id()::text::bigint
                FROM gone HAVING count(*) > 0
            )
       SELECT count(*) FILTER (WHERE "channel" <> 'resync')::text AS pruned FROM gone`,
      [before],
    );
    this.options.logger.warn({ pruned: Number(rows[0]?.pruned ?? 0) }, "outbox rows older than the relay's limit pruned; subscribers will catch up");
  }

  private async pause(ms: number): Promise<void> {
    await sleep(ms, undefined, { signal: this.stop.signal }).catch(() => {});
  }
}

async function readBatch(client: pg.Client, limit: number): Promise<Batch> {
  // now() is the statement's transaction start: every row committed before it is visible to this read.
  const { rows } = await client.query<{ at: Date; id: string | null; channel: string; payload: string; xact_id: string; created_at: Date }>(
    `SELECT n.at, o.id::text AS id, o.channel, o.payload, o.xact_id::text AS xact_id, o.created_at
       FROM (SELECT now() AS at) n
       LEFT JOIN LATERAL (SELECT * FROM "realtime_outbox" ORDER BY "id" LIMIT $1) o ON true`,
    [limit],
  );
  const at = rows[0]?.at ?? new Date();
  const found = rows.filter((row) => row.id !== null);
  return {
    at,
    rows: found.map((row) => ({ id: row.id as string, channel: row.channel, payload: row.payload, xactId: row.xact_id, createdAt: row.created_at })),
  };
}

function definedOnly(options: Partial<RelayTuning>): Partial<RelayTuning> {
  const keys = Object.keys(DEFAULT_RELAY_TUNING) as (keyof RelayTuning)[];
  return Object.fromEntries(keys.filter((key) => options[key] !== undefined).map((key) => [key, options[key]]));
}
