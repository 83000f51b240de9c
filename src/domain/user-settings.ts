import type { Db, DbClient } from "../db/client.js";
import { badInput } from "../lib/errors.js";
import { instantOfWallTime, isTimeZone, wallTimeAt } from "../lib/zoned-time.js";
import { requireStorable } from "./bounds.js";
import { causeFrom, USER_CAUSE } from "./provenance.js";

/** A user's settings; a user who never changed one has the defaults (no row). */
export interface UserSettings {
  timezone: string;
}

export const DEFAULT_TIMEZONE = "UTC";

export async function getUserSettings(db: DbClient, userId: string): Promise<UserSettings> {
  const row = await db.userSetting.findUnique({ where: { userId }, select: { timezone: true } });
  return { timezone: row?.timezone ?? DEFAULT_TIMEZONE };
}

export async function userTimezone(db: DbClient, userId: string): Promise<string> {
  return (await getUserSettings(db, userId)).timezone;
}

export interface UpdateUserSettingsInput {
  timezone?: string | null | undefined;
}

/** An IANA zone name as Intl knows it (e.g. Europe/Berlin), or UTC; `field` names the input in the error. */
export function validTimezone(field: string, value: string): string {
  requireStorable(field, value);
  const zone = value.trim();
  if (!isTimeZone(zone)) throw badInput(field, `"${zone.slice(0, 64)}" is not a known IANA time zone (e.g. Europe/Berlin, America/New_York, UTC)`);
  return zone;
}

/**
 * Omitted fields stay; null puts a setting back to its default. A new zone
 * keeps each all-day task on its calendar day: the day's start in the old
 * zone becomes the same day's start in the new one, in the same transaction
 * (recorded as the user's change, as any task write is).
 */
export async function updateUserSettings(db: Db, userId: string, input: UpdateUserSettingsInput, prefix = "input"): Promise<UserSettings> {
  if (input.timezone === undefined) return getUserSettings(db, userId);
  const timezone = input.timezone === null ? DEFAULT_TIMEZONE : validTimezone(`${prefix}.timezone`, input.timezone);
  return db.$transaction(async (tx) => {
    const previous = await lockedTimezone(tx, userId);
    // updated_at from the database's clock, as every timestamp.
    await tx.$executeRaw`UPDATE user_settings SET timezone = ${timezone}, updated_at = now() WHERE user_id = ${userId}`;
    if (previous !== timezone) await keepAllDayTasksOnTheirDay(tx, userId, previous, timezone);
    return { timezone };
  });
}

/** The user's zone, with their settings row locked (made first if they have none), so two changes of zone run one after the other. */
async function lockedTimezone(tx: DbClient, userId: string): Promise<string> {
  await tx.$executeRaw`INSERT INTO user_settings (user_id, timezone) VALUES (${userId}, ${DEFAULT_TIMEZONE}) ON CONFLICT (user_id) DO NOTHING`;
  const [row] = await tx.$queryRaw<{ timezone: string }[]>`SELECT timezone FROM user_settings WHERE user_id = ${userId} FOR UPDATE`;
  return row?.timezone ?? DEFAULT_TIMEZONE;
}

/** The start of the calendar day `dueAt` starts in zone `from`, in zone `to`. */
export function sameDayIn(dueAt: Date, from: string, to: string): Date {
  const wall = wallTimeAt(dueAt.getTime(), from);
  return new Date(instantOfWallTime({ ...wall, hour: 0, minute: 0, second: 0 }, to));
}

async function keepAllDayTasksOnTheirDay(tx: DbClient, userId: string, from: string, to: string): Promise<void> {
  const rows = await tx.$queryRaw<{ id: string; dueAt: Date }[]>`
    SELECT id::text, due_at AS "dueAt" FROM tasks WHERE user_id = ${userId} AND due_all_day AND due_at IS NOT NULL`;
  const moved = rows
    .map((row) => ({ id: row.id, dueAt: sameDayIn(row.dueAt, from, to) }))
    .filter((row, i) => row.dueAt.getTime() !== rows[i]?.dueAt.getTime());
  if (moved.length === 0) return;
  await tx.$executeRaw`
    UPDATE tasks SET due_at = moved.due_at
    FROM unnest(${moved.map((row) => row.id)}::text[]::uuid[], ${moved.map((row) => row.dueAt.toISOString())}::text[]::timestamptz[]) AS moved(id, due_at), ${causeFrom(USER_CAUSE)}
    WHERE tasks.id = moved.id AND tasks.user_id = ${userId}`;
}
