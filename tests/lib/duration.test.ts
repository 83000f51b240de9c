import { describe, expect, it } from "vitest";
import { durationRule, durationWithin, formatDuration, parseDuration } from "../../src/lib/duration.js";

describe("parseDuration", () => {
  it("should read whole seconds, and a whole number with a unit s, m, h or d", () => {
    const cases: [string, number][] = [
      ["3600", 3600],
      ["0", 0],
      ["90s", 90],
      ["30m", 1800],
      ["12h", 43_200],
      ["7d", 604_800],
      ["365d", 31_536_000],
    ];
    for (const [text, seconds] of cases) expect(parseDuration(text), text).toBe(seconds);
  });

  it("should take any case and blanks around the value or before the unit", () => {
    expect(parseDuration("12H")).toBe(43_200);
    expect(parseDuration(" 30m ")).toBe(1800);
    expect(parseDuration("5 d")).toBe(432_000);
  });

  it("should refuse anything that is not a whole number of one unit", () => {
    for (const text of ["", " ", "abc", "-5", "1.5h", "12w", "h", "1h30m", "1e3", "0x50", "+5", "5dd", "∞"]) {
      expect(parseDuration(text), text).toBeUndefined();
    }
  });
});

describe("durationWithin", () => {
  const bounds = { minSeconds: 1, maxSeconds: 365 * 86_400 };

  it("should keep a duration inside its bounds, both ends included", () => {
    expect(durationWithin("1", bounds)).toBe(1);
    expect(durationWithin("1s", bounds)).toBe(1);
    expect(durationWithin("365d", bounds)).toBe(31_536_000);
    expect(durationWithin("8760h", bounds)).toBe(31_536_000);
  });

  it("should refuse a duration outside its bounds, and one too long to count", () => {
    for (const text of ["0", "0h", "366d", "8761h", "31536001", "99999999999999999999", "9".repeat(400)]) {
      expect(durationWithin(text, bounds), text).toBeUndefined();
    }
  });
});

describe("formatDuration and durationRule", () => {
  it("should name a duration in the largest unit that divides it", () => {
    expect(formatDuration(1)).toBe("1 second");
    expect(formatDuration(90)).toBe("90 seconds");
    expect(formatDuration(120)).toBe("2 minutes");
    expect(formatDuration(3600)).toBe("1 hour");
    expect(formatDuration(86_400)).toBe("1 day");
    expect(formatDuration(365 * 86_400)).toBe("365 days");
  });

  it("should say what a valid duration looks like, with its bounds", () => {
    expect(durationRule({ minSeconds: 1, maxSeconds: 365 * 86_400 })).toBe(
      'a duration from 1 second to 365 days, in seconds ("3600") or with a unit s, m, h or d ("12h")',
    );
    expect(durationRule({ minSeconds: 60, maxSeconds: 7200 }, "1h")).toBe(
      'a duration from 1 minute to 2 hours, in seconds ("3600") or with a unit s, m, h or d ("1h")',
    );
  });
});
