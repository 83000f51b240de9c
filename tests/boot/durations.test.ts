import { describe, expect, it } from "vitest";
import { ConfigError, loadConfig } from "../../src/boot/config.js";

// AUTH_MAX_TOKEN_AGE is the one duration setting; it is read by src/lib/duration.ts, the parser that
// `npm run token -- --ttl` shares (tests/scripts/token-ttl.test.ts).

const age = (AUTH_MAX_TOKEN_AGE: string | undefined) => loadConfig({ AUTH_MAX_TOKEN_AGE }).auth.maxTokenAgeSeconds;

function refusal(AUTH_MAX_TOKEN_AGE: string): string {
  try {
    loadConfig({ AUTH_MAX_TOKEN_AGE });
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    return (error as ConfigError).message;
  }
  throw new Error(`AUTH_MAX_TOKEN_AGE=${JSON.stringify(AUTH_MAX_TOKEN_AGE)} was accepted`);
}

describe("AUTH_MAX_TOKEN_AGE durations", () => {
  it("should read a whole number with a unit s, m, h or d as seconds", () => {
    expect(age("1s")).toBe(1);
    expect(age("90s")).toBe(90);
    expect(age("30m")).toBe(1800);
    expect(age("12h")).toBe(43_200);
    expect(age("7d")).toBe(604_800);
  });

  it("should read a bare whole number as seconds", () => {
    expect(age("1")).toBe(1);
    expect(age("3600")).toBe(3600);
  });

  it("should take the unit in either case and spaces before it", () => {
    expect(age("12H")).toBe(43_200);
    expect(age("7D")).toBe(604_800);
    expect(age("12 h")).toBe(43_200);
    expect(age("5\tm")).toBe(300);
  });

  it("should trim surrounding whitespace and ignore leading zeros", () => {
    expect(age(" 12h ")).toBe(43_200);
    expect(age("\n30m\t")).toBe(1800);
    expect(age("007s")).toBe(7);
  });

  it("should accept up to 365 days exactly, in any unit", () => {
    for (const value of ["365d", "8760h", "525600m", "31536000s", "31536000"]) expect(age(value)).toBe(31_536_000);
  });

  it("should leave an unset, empty or blank setting unset", () => {
    expect(age(undefined)).toBeUndefined();
    expect(age("")).toBeUndefined();
    expect(age("   ")).toBeUndefined();
  });

  it("should refuse zero and anything over 365 days, quoting the value", () => {
    for (const value of ["0", "0s", "0d", "000", "366d", "8761h", "525601m", "31536001", "99999999999999999999"]) {
      const message = refusal(value);
      expect(message).toContain("AUTH_MAX_TOKEN_AGE must be a duration from 1 second to 365 days");
      expect(message).toContain(`got "${value}"`);
    }
  });

  it("should refuse what is not a whole number with an optional unit s, m, h or d", () => {
    const notDurations = [
      "abc",
      "h",
      "s",
      "-5",
      "+5",
      "-5m",
      "1.5h",
      "1,5h",
      "1e3",
      "0x10",
      "12w",
      "5ms",
      "1h30m",
      "1 2h",
      "h12",
      "12hh",
      "Infinity",
      "NaN",
      "١٢h",
    ];
    for (const value of notDurations) {
      const message = refusal(value);
      expect(message).toContain("AUTH_MAX_TOKEN_AGE must be a duration from 1 second to 365 days");
      expect(message).toContain(`got "${value}"`);
    }
  });
});
