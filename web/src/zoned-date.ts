/**
 * Wall-clock dates and times in the viewer's time zone (Viewer.timezone),
 * which need not be the browser's: a due date is entered and shown there.
 */

export interface LocalParts {
  /** YYYY-MM-DD */
  date: string;
  /** HH:MM, 24-hour */
  time: string;
}

const partFormats = new Map<string, Intl.DateTimeFormat>();

function partFormat(zone: string): Intl.DateTimeFormat {
  let format = partFormats.get(zone);
  if (!format) {
    format = new Intl.DateTimeFormat("en-US", {
      timeZone: zone,
      hourCycle: "h23",
      year: "numeric",
      month: "2-digit",
      day: "2-digit",
      hour: "2-digit",
      minute: "2-digit",
      second: "2-digit",
    });
    partFormats.set(zone, format);
  }
  return format;
}

function fieldsAt(instant: number, zone: string): Record<string, number> {
  const fields: Record<string, number> = {};
  for (const part of partFormat(zone).formatToParts(new Date(instant))) {
    if (part.type !== "literal") fields[part.type] = Number(part.value);
  }
  return fields;
}

/** How far the zone's wall clock is ahead of UTC at `instant`, in ms. */
function offsetAt(instant: number, zone: string): number {
  const f = fieldsAt(instant, zone);
  const wall = Date.UTC(f.year ?? 0, (f.month ?? 1) - 1, f.day ?? 1, f.hour ?? 0, f.minute ?? 0, f.second ?? 0);
  return wall - Math.floor(instant / 1000) * 1000;
}

const pad = (value: number | undefined, width = 2) => String(value ?? 0).padStart(width, "0");

/** The date and time the zone's clocks show at `instant`. */
export function localParts(instant: Date | string | number, zone: string): LocalParts {
  const f = fieldsAt(new Date(instant).getTime(), zone);
  return { date: `${pad(f.year, 4)}-${pad(f.month)}-${pad(f.day)}`, time: `${pad(f.hour)}:${pad(f.minute)}` };
}

const DAY_MS = 86_400_000;

/**
 * The instant at which the zone's clocks show `date` `time`, resolved as the
 * server resolves a wall time (src/lib/zoned-time.ts, Temporal's
 * "compatible"): a time the clocks show twice (they fall back) is the
 * earlier; one they skip (they spring forward) moves on by the gap. So a due
 * time typed here and the same words sent to the assistant name one instant.
 */
export function zonedInstant(date: string, time: string, zone: string): Date {
  const [year = 0, month = 1, day = 1] = date.split("-").map(Number);
  const [hour = 0, minute = 0] = time.split(":").map(Number);
  const wall = Date.UTC(year, month - 1, day, hour, minute);
  // The offsets a day either side: around one change, the two the wall time can have.
  const before = offsetAt(wall - DAY_MS, zone);
  const after = offsetAt(wall + DAY_MS, zone);
  const shown = [wall - before, wall - after].filter((instant) => instant + offsetAt(instant, zone) === wall);
  return new Date(shown.length > 0 ? Math.min(...shown) : wall - before);
}

/** Whether `zone` is a time zone this browser knows. */
export function knownZone(zone: string): boolean {
  try {
    partFormat(zone);
    return true;
  } catch {
    return false;
  }
}
