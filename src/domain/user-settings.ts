import type { DbClient } from "../db/client.js";
import { badInput } from "../lib/errors.js";
import { isTimeZone } from "../lib/zoned-time.js";
import { requireStorable } from "./bounds.js";

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

/** Omitted fields stay; null puts a setting back to its default. */
export async function updateUserSettings(db: DbClient, userId: string, input: UpdateUserSettingsInput, prefix = "input"): Promise<UserSettings> {
  if (input.timezone === undefined) return getUserSettings(db, userId);
  const timezone = input.timezone === null ? DEFAULT_TIMEZONE : validTimezone(`${prefix}.timezone`, input.timezone);
  // updated_at from the database's clock, as every timestamp.
  await db.$executeRaw`
    INSERT INTO user_settings (user_id, timezone) VALUES (${userId}, ${timezone})
    ON CONFLICT (user_id) DO UPDATE SET timezone = EXCLUDED.timezone, updated_at = now()`;
  return { timezone };
}
