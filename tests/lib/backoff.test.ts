import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { Backoff, backoffDelay, mayRetry, type BackoffPolicy } from "../../src/lib/backoff.js";

const policy: BackoffPolicy = { initialMs: 100, maxMs: 1000 };
/** Just below 1: Math.random() never returns 1 itself. */
const ALMOST_ONE = 1 - Number.EPSILON;

describe("backoffDelay", () => {
  it("should double the delay from initialMs with each attempt, for the same random draw", () => {
    const wide = { initialMs: 10, maxMs: 1_000_000 };
    for (const random of [0, 0.25, 0.5, ALMOST_ONE]) {
      const delays = [0, 1, 2, 3, 4, 5, 6].map((attempt) => backoffDelay(attempt, wide, () => random));
      const factor = 0.5 + random / 2;
      expect(delays).toEqual([10, 20, 40, 80, 160, 320, 640].map((ms) => expect.closeTo(ms * factor, 9)));
    }
  });

  it("should cap the delay at maxMs, however many attempts have failed", () => {
    // 100·2^4 = 1600 is the first over the cap; 2^1024 is Infinity in a double.
    for (const attempt of [4, 5, 10, 100, 1023, 1024, 5000, Number.MAX_SAFE_INTEGER]) {
      expect(backoffDelay(attempt, policy, () => ALMOST_ONE)).toBeLessThanOrEqual(1000);
      expect(backoffDelay(attempt, policy, () => 0)).toBe(500);
    }
    expect(backoffDelay(3, policy, () => 0)).toBe(400);
  });

  it("should treat a negative attempt as the first", () => {
    expect(backoffDelay(-1, policy, () => 0)).toBe(50);
    expect(backoffDelay(-1000, policy, () => 0.5)).toBe(75);
  });

  it("should scale the capped delay by 0.5 + random/2, so it lies in [half, whole) of it", () => {
    expect(backoffDelay(1, policy, () => 0)).toBe(100);
    expect(backoffDelay(1, policy, () => 0.5)).toBe(150);
    expect(backoffDelay(1, policy, () => ALMOST_ONE)).toBeLessThan(200);
    expect(backoffDelay(1, policy, () => ALMOST_ONE)).toBeCloseTo(200, 9);
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 2000 }),
        fc.integer({ min: 1, max: 60_000 }),
        fc.integer({ min: 1, max: 600_000 }),
        fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true }),
        (attempt, initialMs, maxMs, random) => {
          const whole = Math.min(maxMs, initialMs * 2 ** attempt);
          const delay = backoffDelay(attempt, { initialMs, maxMs }, () => random);
          expect(delay).toBeGreaterThanOrEqual(whole / 2);
          expect(delay).toBeLessThanOrEqual(whole);
          expect(delay).toBeLessThanOrEqual(maxMs);
        },
      ),
    );
  });
});

describe("Backoff", () => {
  /** [half, whole) of each attempt's capped delay: the ranges do not overlap, so each delay shows its attempt. */
  const range = (attempt: number) => {
    const whole = Math.min(policy.maxMs, policy.initialMs * 2 ** attempt);
    return [whole / 2, whole] as const;
  };

  it("should start with no attempts and a first delay in the first attempt's range", () => {
    const backoff = new Backoff(policy);
    expect(backoff.attempts).toBe(0);
    const first = backoff.next();
    expect(first).toBeGreaterThanOrEqual(50);
    expect(first).toBeLessThan(100);
  });

  it("should count each next() as an attempt and grow the delay with it, up to the cap", () => {
    const backoff = new Backoff(policy);
    for (let attempt = 0; attempt < 12; attempt += 1) {
      expect(backoff.attempts).toBe(attempt);
      const [low, high] = range(attempt);
      const delay = backoff.next();
      expect(delay).toBeGreaterThanOrEqual(low);
      // At the cap the whole delay is maxMs itself, which the jitter never reaches.
      expect(delay).toBeLessThan(high);
    }
    expect(backoff.attempts).toBe(12);
  });

  it("should start over after reset(), from the first attempt's range", () => {
    const backoff = new Backoff(policy);
    for (let i = 0; i < 6; i += 1) backoff.next();
    expect(backoff.next()).toBeGreaterThanOrEqual(500);
    backoff.reset();
    expect(backoff.attempts).toBe(0);
    const first = backoff.next();
    expect(first).toBeGreaterThanOrEqual(50);
    expect(first).toBeLessThan(100);
    expect(backoff.attempts).toBe(1);
    backoff.reset();
    backoff.reset();
    expect(backoff.attempts).toBe(0);
  });

  it("should keep the attempts of two Backoffs apart", () => {
    const a = new Backoff(policy);
    const b = new Backoff(policy);
    a.next();
    a.next();
    expect(a.attempts).toBe(2);
    expect(b.attempts).toBe(0);
    expect(b.next()).toBeLessThan(100);
  });

  it("should allow maxRetries retries after the first attempt, and any number when it is unset", () => {
    const three = { ...policy, maxRetries: 3 };
    expect([0, 1, 2, 3, 4].map((attempt) => mayRetry(attempt, three))).toEqual([true, true, true, false, false]);
    expect(mayRetry(0, { ...policy, maxRetries: 0 })).toBe(false);
    expect(mayRetry(5000, policy)).toBe(true);
  });
});
