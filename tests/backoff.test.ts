import { describe, expect, it } from "vitest";
import { Backoff, backoffDelay, mayRetry } from "../src/lib/backoff.js";

describe("backoff", () => {
  const policy = { initialMs: 100, maxMs: 1000 };

  it("should double from initialMs up to maxMs, with the random factor between a half and one", () => {
    expect([0, 1, 2, 3, 4, 10, 5000].map((attempt) => backoffDelay(attempt, policy, () => 0))).toEqual([50, 100, 200, 400, 500, 500, 500]);
    expect([0, 1, 2, 3, 4, 10, 5000].map((attempt) => backoffDelay(attempt, policy, () => 0.999_999))).toEqual(
      [100, 200, 400, 800, 1000, 1000, 1000].map((ms) => expect.closeTo(ms, 1)),
    );
  });

  it("should count attempts until reset", () => {
    const backoff = new Backoff(policy);
    const delays = [backoff.next(), backoff.next(), backoff.next()];
    expect(backoff.attempts).toBe(3);
    expect(delays[0]).toBeGreaterThanOrEqual(50);
    expect(delays[0]).toBeLessThan(100);
    expect(delays[2]).toBeGreaterThanOrEqual(200);
    expect(delays[2]).toBeLessThan(400);
    backoff.reset();
    expect(backoff.attempts).toBe(0);
    expect(backoff.next()).toBeLessThan(100);
  });

  it("should allow maxRetries retries after the first attempt, and any number when it is unset", () => {
    const three = { ...policy, maxRetries: 3 };
    expect([0, 1, 2, 3, 4].map((attempt) => mayRetry(attempt, three))).toEqual([true, true, true, false, false]);
    expect(mayRetry(0, { ...policy, maxRetries: 0 })).toBe(false);
    expect(mayRetry(5000, policy)).toBe(true);
  });
});
