import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { normalizeLabels } from "../../src/domain/bounds.js";
import { instantOfWallTime } from "../../src/lib/zoned-time.js";
import { withLabels } from "../../web/src/labels.js";
import { localParts, zonedInstant } from "../../web/src/zoned-date.js";

/**
 * The web client's pure task-model logic, without a browser: wall-clock times
 * in the viewer's zone across DST changes, and label chips normalised exactly
 * as the server stores labels.
 */

describe("due dates in the viewer's zone (web/src/zoned-date.ts)", () => {
  it.each([
    // Europe/Berlin: CET (+1) until 29 March 2026 01:00 UTC, CEST (+2) until 25 October 01:00 UTC.
    ["2026-03-28", "12:00", "Europe/Berlin", "2026-03-28T11:00:00.000Z"],
    ["2026-03-29", "12:00", "Europe/Berlin", "2026-03-29T10:00:00.000Z"],
    ["2026-03-29", "00:00", "Europe/Berlin", "2026-03-28T23:00:00.000Z"],
    ["2026-10-25", "12:00", "Europe/Berlin", "2026-10-25T11:00:00.000Z"],
    ["2026-11-01", "00:30", "America/New_York", "2026-11-01T04:30:00.000Z"],
    ["2026-12-10", "17:30", "Asia/Kolkata", "2026-12-10T12:00:00.000Z"],
    ["2026-12-10", "17:30", "UTC", "2026-12-10T17:30:00.000Z"],
  ])("should put %s %s in %s at %s, and read it back as that date and time", (date, time, zone, instant) => {
    expect(zonedInstant(date, time, zone).toISOString()).toBe(instant);
    expect(localParts(instant, zone)).toEqual({ date, time });
  });

  it("should move a time in a spring-forward gap to just after it (02:30 in Berlin on 29 March 2026 is 03:30 CEST)", () => {
    expect(zonedInstant("2026-03-29", "02:30", "Europe/Berlin").toISOString()).toBe("2026-03-29T01:30:00.000Z");
  });

  it("should take the earlier of a time the clocks show twice (02:30 in Berlin on 25 October 2026 is 02:30 CEST)", () => {
    expect(zonedInstant("2026-10-25", "02:30", "Europe/Berlin").toISOString()).toBe("2026-10-25T00:30:00.000Z");
    expect(zonedInstant("2026-11-01", "01:30", "America/New_York").toISOString()).toBe("2026-11-01T05:30:00.000Z");
  });

  it("should name the instant the server names for every quarter hour of days the clocks change", () => {
    const days: [string, string][] = [
      ["Europe/Berlin", "2026-03-29"],
      ["Europe/Berlin", "2026-10-25"],
      ["America/New_York", "2026-03-08"],
      ["America/New_York", "2026-11-01"],
      // Half-hour shifts, and the southern hemisphere.
      ["Australia/Lord_Howe", "2026-04-05"],
      ["Australia/Lord_Howe", "2026-10-04"],
      ["America/Santiago", "2026-04-05"],
      ["Asia/Kolkata", "2026-10-25"],
    ];
    for (const [zone, date] of days) {
      for (let minutes = 0; minutes < 24 * 60; minutes += 15) {
        const time = `${String(Math.floor(minutes / 60)).padStart(2, "0")}:${String(minutes % 60).padStart(2, "0")}`;
        const [year, month, day] = date.split("-").map(Number) as [number, number, number];
        const server = instantOfWallTime({ year, month, day, hour: Math.floor(minutes / 60), minute: minutes % 60, second: 0 }, zone);
        expect(zonedInstant(date, time, zone).getTime(), `${zone} ${date} ${time}`).toBe(server);
      }
    }
  });
});

describe("label chips (web/src/labels.ts)", () => {
  const label = fc.string({ minLength: 1, maxLength: 12, unit: fc.constantFrom("a", "A", "ß", "İ", "é", "É", " ", "\t", "x") });

  it("should normalise labels as the server does: trimmed, repeats ignoring case dropped, first spelling kept, in order", () => {
    fc.assert(
      fc.property(
        fc.array(
          label.filter((text) => text.trim() !== ""),
          { maxLength: 15 },
        ),
        (labels) => {
          const chips = labels.reduce<string[]>((kept, typed) => withLabels(kept, typed), []);
          expect(chips).toEqual(normalizeLabels("labels", labels));
        },
      ),
    );
  });

  it("should split what is typed at commas and drop the empty pieces", () => {
    expect(withLabels(["Work"], " home, ,WORK,Garden ,")).toEqual(["Work", "home", "Garden"]);
  });
});
