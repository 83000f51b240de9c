import type { Db } from "../db/client.js";
import { Prisma } from "../generated/prisma/client.js";

/** A token bucket: `burst` tokens when full, refilled at `perMinute` tokens a minute. */
export interface RateLimit {
  perMinute: number;
  burst: number;
}

export type TakeOutcome = { allowed: true } | { allowed: false; retryAfterSeconds: number };

/**
 * Takes one token from the user's `name` bucket, or says how long until one is
 * there. The bucket lives in rate_limit_buckets, so every API instance on the
 * database shares it, and only the database's clock is read: instances whose
 * clocks disagree still agree on the bucket.
 *
 * Taking is one INSERT … ON CONFLICT DO UPDATE: concurrent takes on one bucket
 * queue on its row lock and each sees the balance the previous one committed,
 * so no interleaving lets more than the balance through. A refused take
 * writes nothing.
 */
export async function takeToken(db: Db, userId: string, name: string, limit: RateLimit): Promise<TakeOutcome> {
  const taken = await db.$queryRaw<{ tokens: number }[]>(takeTokenSql(userId, name, limit, Prisma.sql`TRUE`));
  if (taken.length > 0) return { allowed: true };
  return { allowed: false, retryAfterSeconds: await secondsUntilToken(db, userId, name, limit) };
}

/**
 * The INSERT … ON CONFLICT DO UPDATE … RETURNING tokens that takes a token
 * (see takeToken), trying only when `when` holds: as a CTE, it lets the
 * statement that needs the token take it (a refused take returns no row and
 * writes nothing, so the statement writes nothing either).
 */
export function takeTokenSql(userId: string, name: string, limit: RateLimit, when: Prisma.Sql): Prisma.Sql {
  if (!(limit.perMinute > 0) || !(limit.burst >= 1)) {
    throw new RangeError(`rate limit "${name}" needs perMinute > 0 and burst >= 1`);
  }
  const rate = limit.perMinute / 60;
  const burst = limit.burst;
  // The clock is read once, when the row to insert is formed (before any wait
  // for the row lock), and reaches the update as EXCLUDED.updated_at. A take
  // that waited behind a later one sees a negative elapsed time: it refills
  // nothing and leaves updated_at where it was, so time is never counted twice.
  const refilled = Prisma.sql`LEAST(
    ${burst}::float8,
    b.tokens + GREATEST(0, EXTRACT(EPOCH FROM EXCLUDED.updated_at - b.updated_at))::float8 * ${rate}::float8
  )`;
  return Prisma.sql`
    INSERT INTO rate_limit_buckets AS b (user_id, name, tokens, updated_at)
    SELECT ${userId}, ${name}, ${burst}::float8 - 1, clock_timestamp() WHERE ${when}
    ON CONFLICT (user_id, name) DO UPDATE
      SET tokens = ${refilled} - 1,
          updated_at = GREATEST(b.updated_at, EXCLUDED.updated_at)
      WHERE ${refilled} >= 1
    RETURNING tokens`;
}

/**
 * Whole seconds until the bucket holds a token again, from the state as now
 * committed (a fresh snapshot, after the refused take). At least 1: a token
 * that arrived in between is not promised to whoever asks next.
 */
export async function secondsUntilToken(db: Db, userId: string, name: string, limit: RateLimit): Promise<number> {
  const rate = limit.perMinute / 60;
  const burst = limit.burst;
  const rows = await db.$queryRaw<{ seconds: number | null }[]>`
    SELECT CEIL(
      (1 - LEAST(
        ${burst}::float8,
        tokens + GREATEST(0, EXTRACT(EPOCH FROM clock_timestamp() - updated_at))::float8 * ${rate}::float8
      )) / ${rate}::float8
    ) AS seconds
    FROM rate_limit_buckets
    WHERE user_id = ${userId} AND name = ${name}`;
  const seconds = Number(rows[0]?.seconds ?? 1);
  return Number.isFinite(seconds) ? Math.max(1, seconds) : 1;
}
