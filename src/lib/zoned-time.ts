/**
 * Instants and wall-clock times in an IANA time zone, with Intl (the zone
 * data Node ships). No arithmetic on offsets by hand beyond what Intl reports,
 * so DST follows the zone's own rules.
 */

/** A wall-clock date and time (month 1–12). */
export interface WallTime {
  year: number;
  month: number;
  day: number;
  hour: number;
  minute: number;
  second: number;
}

const formatters = new Map<string, Intl.DateTimeFormat>();

function formatterFor(zone: string): Intl.DateTimeFormat {
  let formatter = formatters.get(zone);
  if (formatter === undefined) {
    formatter = new Intl.DateTimeFormat("en-US", {
      timeZone: zone,
      hourCycle: "h23",
      year: "numeric",
      month: "2-digit",
      day: "2-digit",
      hour: "2-digit",
      minute: "2-digit",
      second: "2-digit",
    });
    formatters.set(zone, formatter);
  }
  return formatter;
}

let knownZones: Set<string> | undefined;

/** An IANA name's shape: segments that start with a capital or a digit (Europe/Berlin, Etc/GMT+5, EST5EDT), no offsets. */
const IANA_NAME = /^[A-Z][A-Za-z0-9_+-]*(?:\/[A-Z0-9][A-Za-z0-9_+-]*)*$/;

/**
 * An IANA zone name Node's zone data knows, spelled as IANA does, or UTC.
 * Intl.supportedValuesOf lists only CLDR's canonical names (Asia/Calcutta,
 * not Asia/Kolkata; Europe/Kiev, not Europe/Kyiv), so a name outside it
 * counts when Intl accepts it as a zone: Intl also takes any case and bare
 * offsets, which the shape check refuses.
 */
export function isTimeZone(name: string): boolean {
  knownZones ??= new Set([...Intl.supportedValuesOf("timeZone"), "UTC"]);
  if (knownZones.has(name)) return true;
  if (!IANA_NAME.test(name)) return false;
  try {
    formatterFor(name);
    return true;
  } catch {
    return false;
  }
}

/** The wall-clock time at `epochMs` in `zone` (seconds; milliseconds dropped). */
export function wallTimeAt(epochMs: number, zone: string): WallTime {
  const parts: Record<string, number> = {};
  for (const part of formatterFor(zone).formatToParts(new Date(epochMs))) {
    if (part.type !== "literal") parts[part.type] = Number(part.value);
  }
  return {
    year: parts.year ?? 0,
    month: parts.month ?? 1,
    day: parts.day ?? 1,
    hour: parts.hour ?? 0,
    minute: parts.minute ?? 0,
    second: parts.second ?? 0,
  };
}

function wallAsUtc(wall: WallTime): number {
  return Date.UTC(wall.year, wall.month - 1, wall.day, wall.hour, wall.minute, wall.second);
}

/** The zone's offset from UTC at `epochMs`, in milliseconds (east positive). */
export function offsetAt(epochMs: number, zone: string): number {
  const whole = Math.floor(epochMs / 1000) * 1000;
  return wallAsUtc(wallTimeAt(whole, zone)) - whole;
}

const DAY_MS = 86_400_000;

/**
 * The instant a wall-clock time names in `zone`, resolved as Temporal's
 * "compatible" does: a time that occurs twice (the hour clocks fall back) is
 * the earlier; one that does not occur (the hour they spring forward) moves
 * forward by the gap.
 */
export function instantOfWallTime(wall: WallTime, zone: string): number {
  const asUtc = wallAsUtc(wall);
  const before = offsetAt(asUtc - DAY_MS, zone);
  const after = offsetAt(asUtc + DAY_MS, zone);
  const candidates = [asUtc - before, asUtc - after].filter((t) => t + offsetAt(t, zone) === asUtc);
  if (candidates.length > 0) return Math.min(...candidates);
  return asUtc - before;
}

/** The start of the local day `epochMs` falls on in `zone` (midnight, or the first instant of the day). */
export function startOfLocalDay(epochMs: number, zone: string): number {
  const wall = wallTimeAt(epochMs, zone);
  return instantOfWallTime({ ...wall, hour: 0, minute: 0, second: 0 }, zone);
}

const pad = (value: number, width = 2) => String(value).padStart(width, "0");

function offsetText(offsetMs: number): string {
  const sign = offsetMs < 0 ? "-" : "+";
  const minutes = Math.abs(Math.round(offsetMs / 60_000));
  return `${sign}${pad(Math.floor(minutes / 60))}:${pad(minutes % 60)}`;
}

/** `epochMs` as a local ISO 8601 date-time with its offset in `zone`, e.g. 2026-03-30T09:00:00+02:00 (milliseconds when there are any). */
export function localIso(epochMs: number, zone: string): string {
  const wall = wallTimeAt(epochMs, zone);
  const date = `${pad(wall.year, 4)}-${pad(wall.month)}-${pad(wall.day)}`;
  const ms = ((epochMs % 1000) + 1000) % 1000;
  const fraction = ms === 0 ? "" : `.${pad(ms, 3)}`;
  return `${date}T${pad(wall.hour)}:${pad(wall.minute)}:${pad(wall.second)}${fraction}${offsetText(offsetAt(epochMs, zone))}`;
}

/** The local date (YYYY-MM-DD) `epochMs` falls on in `zone`. */
export function localDate(epochMs: number, zone: string): string {
  return localIso(epochMs, zone).slice(0, 10);
}

/** iCalendar's local form (no offset) of a wall-clock time: 20260330T090000. */
export function icalWallTime(wall: WallTime): string {
  return `${pad(wall.year, 4)}${pad(wall.month)}${pad(wall.day)}T${pad(wall.hour)}${pad(wall.minute)}${pad(wall.second)}`;
}

const LOCAL_ISO = /^(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:\.\d{1,9})?)?(Z|[+-]\d{2}:?\d{2})?)?$/i;

/** A date-time as a person or a model writes it: an instant, or a date (all day). */
export interface ParsedLocalTime {
  epochMs: number;
  /** Only a date was given (YYYY-MM-DD): the start of that day in the zone. */
  dateOnly: boolean;
}

/**
 * Parses YYYY-MM-DD (that day, in `zone`), YYYY-MM-DDTHH:MM[:SS] (a wall
 * time in `zone`) or either with Z or an offset (that instant). Undefined
 * when it is none of them, or names a date that does not exist.
 */
export function parseLocalTime(text: string, zone: string): ParsedLocalTime | undefined {
  const match = LOCAL_ISO.exec(text.trim());
  if (!match) return undefined;
  const [, y, mo, d, h, mi, s, offset] = match;
  const wall: WallTime = {
    year: Number(y),
    month: Number(mo),
    day: Number(d),
    hour: Number(h ?? 0),
    minute: Number(mi ?? 0),
    second: Number(s ?? 0),
  };
  const probe = new Date(wallAsUtc(wall));
  const exists = probe.getUTCFullYear() === wall.year && probe.getUTCMonth() + 1 === wall.month && probe.getUTCDate() === wall.day;
  if (!exists || wall.hour > 23 || wall.minute > 59 || wall.second > 59) return undefined;
  if (offset !== undefined) {
    const instant = Date.parse(`${y}-${mo}-${d}T${pad(wall.hour)}:${pad(wall.minute)}:${pad(wall.second)}${normalOffset(offset)}`);
    return Number.isNaN(instant) ? undefined : { epochMs: instant, dateOnly: false };
  }
  return { epochMs: instantOfWallTime(wall, zone), dateOnly: h === undefined };
}

function normalOffset(offset: string): string {
  if (offset.toUpperCase() === "Z") return "Z";
  return offset.includes(":") ? offset : `${offset.slice(0, 3)}:${offset.slice(3)}`;
}
