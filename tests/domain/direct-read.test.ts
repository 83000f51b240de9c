import pg from "pg";
import { describe, expect, it } from "vitest";
import { parseTimestamptz } from "../../src/domain/direct-read.js";

// The task list's direct read parses timestamptz itself (src/domain/direct-read.ts): it must give
// node-postgres' Date for every text Postgres can send, the usual shape and the unusual ones alike.
const postgres = pg.types.getTypeParser(1184, "text") as (text: string) => unknown;

describe("parseTimestamptz", () => {
  const texts = [
    "2026-12-07 08:04:12.197+00",
    "2026-12-07 08:04:12+00",
    "2026-12-07 08:04:12.1+00",
    "2026-12-07 08:04:12.12+00",
    "2026-02-28 23:59:59.999+05:30",
    "2026-01-01 00:00:00-03",
    "1969-12-31 23:59:59.5-09:30",
    "0099-06-01 12:00:00+00",
    "2026-12-07 08:04:12.123456+00",
    "1883-11-18 11:59:59+00:53:28",
    "0044-03-15 12:00:00+00 BC",
    "infinity",
    "-infinity",
  ];
  for (const text of texts) {
    it(`should read ${text} as node-postgres does`, () => {
      const ours = parseTimestamptz(text) as unknown;
      const theirs = postgres(text);
      if (theirs instanceof Date) expect((ours as Date).getTime()).toBe(theirs.getTime());
      else expect(ours).toBe(theirs);
    });
  }
});
