import { setTimeout as sleep } from "node:timers/promises";
import { afterEach, describe, expect, it, vi } from "vitest";
import { armDeadline, MAX_TIMER_DELAY_MS, type Deadline } from "../../src/realtime/deadline-timer.js";

describe("armDeadline", () => {
  const armed: Deadline[] = [];
  afterEach(() => {
    for (const deadline of armed.splice(0)) deadline.cancel();
  });

  function arm(atMs: number, fn: () => void, maxStepMs?: number): Deadline {
    const deadline = armDeadline(atMs, fn, maxStepMs);
    armed.push(deadline);
    return deadline;
  }

  it("should not fire early for a deadline beyond setTimeout's limit, and raise no TimeoutOverflowWarning", async () => {
    const warnings: Error[] = [];
    const onWarning = (warning: Error) => warnings.push(warning);
    process.on("warning", onWarning);
    try {
      let fired = false;
      arm(Date.now() + MAX_TIMER_DELAY_MS + 60_000, () => (fired = true));
      arm(Date.now() + 30 * 86_400_000, () => (fired = true));
      await sleep(200);
      expect(fired).toBe(false);
      expect(warnings.map((warning) => warning.name)).not.toContain("TimeoutOverflowWarning");
    } finally {
      process.off("warning", onWarning);
    }
  });

  it("should fire once, at or after the deadline, when it waits in several steps", async () => {
    const at = Date.now() + 300;
    const calls: number[] = [];
    arm(at, () => calls.push(Date.now()), 40);
    await sleep(150);
    expect(calls).toEqual([]);
    await vi.waitFor(() => expect(calls.length, "calls").toBeGreaterThan(0), { timeout: 5000, interval: 10 });
    expect(calls).toHaveLength(1);
    expect(calls[0]).toBeGreaterThanOrEqual(at);
    await sleep(100);
    expect(calls).toHaveLength(1);
  });

  it("should fire a deadline already past soon, but not synchronously", async () => {
    let fired = false;
    arm(Date.now() - 1000, () => (fired = true));
    expect(fired).toBe(false);
    await sleep(50);
    expect(fired).toBe(true);
  });

  it("should never fire once cancelled", async () => {
    let fired = false;
    const deadline = arm(Date.now() + 50, () => (fired = true), 20);
    await sleep(10);
    deadline.cancel();
    deadline.cancel();
    await sleep(150);
    expect(fired).toBe(false);
  });

  it("should refuse NaN", () => {
    expect(() => armDeadline(Number.NaN, () => {})).toThrow(RangeError);
  });
});
