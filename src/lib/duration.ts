/**
 * Durations as people write them in settings and on command lines: whole
 * seconds ("3600") or a whole number with a unit ("90s", "30m", "12h", "7d").
 * One grammar for AUTH_MAX_TOKEN_AGE and `npm run token -- --ttl`, so a value
 * that works in one works in the other.
 */

const UNIT_SECONDS = { s: 1, m: 60, h: 3600, d: 86_400 } as const;
type Unit = keyof typeof UNIT_SECONDS;

const DURATION = /^(\d+)\s*([smhd]?)$/i;

/** The inclusive range a duration must fall in, in seconds. */
export interface DurationBounds {
  minSeconds: number;
  maxSeconds: number;
}

/** Seconds for "3600", "90s", "30m", "12h" or "7d" (any case, blanks around it); undefined for anything else. */
export function parseDuration(text: string): number | undefined {
  const match = DURATION.exec(text.trim());
  if (match === null) return undefined;
  const unit = ((match[2] ?? "") || "s").toLowerCase() as Unit;
  return Number(match[1]) * UNIT_SECONDS[unit];
}

/** Seconds for a duration within `bounds`; undefined when it is not a duration or falls outside them. */
export function durationWithin(text: string, bounds: DurationBounds): number | undefined {
  const seconds = parseDuration(text);
  if (seconds === undefined || seconds < bounds.minSeconds || seconds > bounds.maxSeconds) return undefined;
  return seconds;
}

/** "1 second", "90 seconds", "12 hours", "365 days": the largest unit that divides the duration exactly. */
export function formatDuration(seconds: number): string {
  const [name, size] = (
    [
      ["day", 86_400],
      ["hour", 3600],
      ["minute", 60],
    ] as const
  ).find(([, unit]) => seconds % unit === 0 && seconds > 0) ?? ["second", 1];
  const count = seconds / size;
  return `${count} ${name}${count === 1 ? "" : "s"}`;
}

/** What a valid value looks like, for "X must be …" messages; `example` is a duration with a unit. */
export function durationRule(bounds: DurationBounds, example = "12h"): string {
  return (
    `a duration from ${formatDuration(bounds.minSeconds)} to ${formatDuration(bounds.maxSeconds)}, ` +
    `in seconds ("3600") or with a unit s, m, h or d ("${example}")`
  );
}
