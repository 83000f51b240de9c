import { RRuleTemporal } from "rrule-temporal";
import { badInput } from "../lib/errors.js";
import { icalWallTime, wallTimeAt } from "../lib/zoned-time.js";
import { Bounds, charLength, requireStorable } from "./bounds.js";

/**
 * Recurring tasks: an RFC 5545 RRULE (rrule-temporal evaluates it, on
 * Temporal, so a rule keeps its local hour across DST changes). The task's
 * dueAt is the rule's DTSTART, taken as a wall-clock time in the user's time
 * zone, and always counts as the first occurrence (as RFC 5545 says): the
 * next occurrence is the first one after dueAt. When the task moves on to it,
 * COUNT goes down by one, so "COUNT=3" means three occurrences in all, however
 * many times the task has moved.
 */

/** The rule parts RFC 5545 defines (3.3.10); anything else is refused rather than silently dropped. */
const PARTS = new Set([
  "FREQ",
  "UNTIL",
  "COUNT",
  "INTERVAL",
  "BYSECOND",
  "BYMINUTE",
  "BYHOUR",
  "BYDAY",
  "BYMONTHDAY",
  "BYYEARDAY",
  "BYWEEKNO",
  "BYMONTH",
  "BYSETPOS",
  "WKST",
]);

/** A task is not a calendar alarm: every minute or second is refused. */
const FREQUENCIES = new Set(["YEARLY", "MONTHLY", "WEEKLY", "DAILY", "HOURLY"]);

/** Numeric parts with ranges the library does not check itself. */
const RANGES: Record<string, [number, number]> = {
  COUNT: [1, 100_000],
  INTERVAL: [1, 1000],
  BYSECOND: [0, 60],
  BYMINUTE: [0, 59],
  BYHOUR: [0, 23],
};

/**
 * How far evaluation looks before giving up: a rule that matches nothing in
 * this many periods (FREQ=DAILY;BYMONTHDAY=31;BYMONTH=2) is refused, and
 * evaluating any rule costs at most some tens of milliseconds.
 */
const MAX_PERIODS = 2000;

/** Splits and checks the rule's syntax: NAME=VALUE parts, known names, each once, numbers in range. */
function parts(field: string, rule: string): Map<string, string> {
  const found = new Map<string, string>();
  for (const part of rule.split(";")) {
    const [name, value, extra] = part.split("=");
    if (name === undefined || value === undefined || value === "" || extra !== undefined) {
      throw badInput(field, `"${part}" is not a NAME=VALUE rule part (e.g. FREQ=WEEKLY;BYDAY=MO,TH)`);
    }
    if (!PARTS.has(name)) throw badInput(field, `${name} is not an RRULE part`);
    if (found.has(name)) throw badInput(field, `${name} is given twice`);
    const range = RANGES[name];
    if (range && !value.split(",").every((item) => /^\d+$/.test(item) && Number(item) >= range[0] && Number(item) <= range[1])) {
      throw badInput(field, `${name} must be between ${range[0]} and ${range[1]}`);
    }
    found.set(name, value);
  }
  const freq = found.get("FREQ");
  if (freq === undefined) throw badInput(field, "needs FREQ (e.g. FREQ=DAILY)");
  if (!FREQUENCIES.has(freq)) throw badInput(field, `FREQ must be one of ${[...FREQUENCIES].join(", ")}`);
  if (found.has("COUNT") && found.has("UNTIL")) throw badInput(field, "must not have both COUNT and UNTIL");
  return found;
}

/**
 * The rule as stored: trimmed, upper case, without an "RRULE:" prefix.
 * Refuses what is not one valid RRULE (a DTSTART or second line included:
 * dueAt is the start). `field` names the input in the error.
 */
export function normalizeRecurrence(field: string, value: string): string {
  requireStorable(field, value);
  const rule = value
    .trim()
    .replace(/^RRULE:/i, "")
    .toUpperCase();
  if (rule === "") throw badInput(field, "must not be empty (null clears it)");
  if (charLength(rule) > Bounds.recurrence.max) throw badInput(field, `must be at most ${Bounds.recurrence.max} characters`);
  if (/\s/.test(rule)) throw badInput(field, "must be a single RRULE value, e.g. FREQ=WEEKLY;BYDAY=MO,TH (dueAt is the start; no DTSTART)");
  parts(field, rule);
  try {
    ruleAt(rule, new Date(Date.UTC(2026, 0, 1, 9)), "UTC");
  } catch (error) {
    throw badInput(field, `is not a valid RRULE (${(error as Error).message})`);
  }
  return rule;
}

function ruleAt(rule: string, start: Date, zone: string): RRuleTemporal {
  const dtstart = `DTSTART;TZID=${zone}:${icalWallTime(wallTimeAt(start.getTime(), zone))}`;
  return new RRuleTemporal({ rruleString: `${dtstart}\nRRULE:${rule}`, includeDtstart: true, maxIterations: MAX_PERIODS });
}

/**
 * The occurrences after `start` (at most `limit`), in `zone`. Empty when the
 * rule has none left; throws BAD_USER_INPUT on `field` when it would take
 * more than MAX_PERIODS periods to find the next one.
 */
export function occurrencesAfter(rule: string, start: Date, zone: string, limit: number, field = "recurrence"): Date[] {
  if (limit <= 0) return [];
  try {
    const all = ruleAt(rule, start, zone).all((_occurrence, index) => index < limit + 1);
    return all.slice(1).map((occurrence) => new Date(occurrence.epochMilliseconds));
  } catch (error) {
    if (/Maximum iterations/i.test((error as Error).message)) {
      throw badInput(field, `has no occurrence within ${MAX_PERIODS} of its periods after the due date`);
    }
    throw badInput(field, `is not a valid RRULE (${(error as Error).message})`);
  }
}

/** Where a recurring task moves when it is completed, or null when its rule has no occurrence left. */
export function nextOccurrence(rule: string, dueAt: Date, zone: string): { dueAt: Date; rule: string } | null {
  const [next] = occurrencesAfter(rule, dueAt, zone, 1);
  if (next === undefined) return null;
  const count = /(^|;)COUNT=(\d+)/.exec(rule);
  if (count === null) return { dueAt: next, rule };
  const left = Number(count[2]) - 1;
  if (left < 1) return null;
  return { dueAt: next, rule: rule.replace(/(^|;)COUNT=\d+/, `$1COUNT=${left}`) };
}
