import type { Logger } from "../lib/logger.js";
import type { TransportKind } from "./transport.js";

/**
 * Which way the triggers send a wake-up is one row of the database
 * (realtime_settings, 20261201100000_realtime_outbox): todo_realtime_send()
 * reads it in the writing transaction and either pg_notify()s (postgres) or
 * inserts an outbox row (nats), never both. A row rather than a database-level
 * setting (ALTER DATABASE … SET) because a row is seen by every session at
 * once, pooled ones included, and needs no ownership of the database.
 *
 * Each instance claims its transport when it connects. Every instance of a
 * deployment must run the same one: an instance that flips the row leaves the
 * others deaf to new wake-ups until they restart on its transport, so a flip
 * is logged at warn. Leaving nats drops the outbox rows no relay will publish
 * any more (subscribers catch up from the rows when their transport starts).
 */

export interface Queryable {
  query<R extends Record<string, unknown>>(sql: string, values?: unknown[]): Promise<{ rows: R[] }>;
}

/** Sets the database's transport; warns when that changes what another instance had set. */
export async function claimTransport(client: Queryable, kind: TransportKind, logger: Logger): Promise<void> {
  // Upserted: a deleted row would otherwise leave the triggers on their default (postgres).
  const { rows } = await client.query<{ previous: string | null }>(
    `WITH before AS (SELECT "transport" FROM "realtime_settings" WHERE "id" = 1)
     INSERT INTO "realtime_settings" ("id", "transport") VALUES (1, $1)
     ON CONFLICT ("id") DO UPDATE SET "transport" = EXCLUDED."transport", "updated_at" = CURRENT_TIMESTAMP
       WHERE "realtime_settings"."transport" IS DISTINCT FROM EXCLUDED."transport"
     RETURNING (SELECT "transport" FROM before) AS previous`,
    [kind],
  );
  const previous = rows[0]?.previous;
  if (previous !== undefined && previous !== null) {
    logger.warn(
      { from: previous, to: kind },
      "switched the database's realtime transport; instances still on the other one hear no wake-ups until restarted",
    );
  }
  if (kind === "postgres") await client.query(`DELETE FROM "realtime_outbox"`);
}
