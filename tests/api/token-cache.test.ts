import { describe, expect, it } from "vitest";
import { createVerifier, signHs256, type TokenVerifier } from "../../src/auth/verifier.js";
import { AppError } from "../../src/lib/errors.js";
import { cachingVerifier } from "../../src/auth/token-cache.js";
import { newUserId } from "../helpers/db.js";
import { TEST_JWT_SECRET, testVerifier } from "../helpers/tokens.js";

const AUTH = { jwtSecret: TEST_JWT_SECRET, jwksUrl: undefined, issuer: undefined, audience: undefined, maxTokenAgeSeconds: undefined };

/** A movable clock, starting at the real time (tokens are signed with the real time). */
function clockAt(start = Date.now()) {
  let now = start;
  return { now: () => now, set: (ms: number) => (now = ms) };
}

/** The real HS256 verifier, counting how often it really checks a signature. */
function countingVerifier(): { verifier: TokenVerifier; checks: () => number } {
  const real = testVerifier();
  let checks = 0;
  return {
    verifier: {
      verify: (token) => {
        checks += 1;
        return real.verify(token);
      },
    },
    checks: () => checks,
  };
}

async function rejection(promise: Promise<unknown>): Promise<AppError> {
  const error = await promise.then(
    () => undefined,
    (caught: unknown) => caught,
  );
  expect(error).toBeInstanceOf(AppError);
  return error as AppError;
}

describe("token verification cache", () => {
  it("should check a repeated token's signature once", async () => {
    const { verifier, checks } = countingVerifier();
    const clock = clockAt();
    const cached = cachingVerifier(verifier, { maxEntries: 10, ttlMs: 60_000, clock: clock.now });
    const userId = newUserId("cache");
    const token = await signHs256(TEST_JWT_SECRET, { sub: userId, expiresIn: "1h" });

    expect((await cached.verify(token)).userId).toBe(userId);
    expect((await cached.verify(token)).userId).toBe(userId);
    expect(checks()).toBe(1);
    const other = await signHs256(TEST_JWT_SECRET, { sub: newUserId("cache"), expiresIn: "1h" });
    await cached.verify(other);
    expect(checks()).toBe(2);
  });

  it("should never accept a cached token once its exp has passed", async () => {
    const clock = clockAt();
    const verifier = createVerifier(AUTH, { clock: clock.now });
    const token = await signHs256(TEST_JWT_SECRET, { sub: newUserId("cache"), expiresIn: "60s" });
    const { expiresAt } = await verifier.verify(token);
    expect(expiresAt * 1000).toBeGreaterThan(clock.now());

    // One millisecond before exp: still valid, from the cache.
    clock.set(expiresAt * 1000 - 1);
    expect((await verifier.verify(token)).expiresAt).toBe(expiresAt);
    // At exp, as jose rules: expired, although the token was verified and cached.
    clock.set(expiresAt * 1000);
    const error = await rejection(verifier.verify(token));
    expect(error.code).toBe("UNAUTHENTICATED");
    expect(error.message).toBe("The token has expired");
    // And it stays refused.
    clock.set(expiresAt * 1000 + 60_000);
    expect((await rejection(verifier.verify(token))).message).toBe("The token has expired");
  });

  it("should check the signature again once the entry is older than its time to live", async () => {
    const { verifier, checks } = countingVerifier();
    const clock = clockAt();
    const cached = cachingVerifier(verifier, { maxEntries: 10, ttlMs: 1000, clock: clock.now });
    const token = await signHs256(TEST_JWT_SECRET, { sub: newUserId("cache"), expiresIn: "1h" });
    await cached.verify(token);
    clock.set(clock.now() + 999);
    await cached.verify(token);
    expect(checks()).toBe(1);
    clock.set(clock.now() + 1);
    await cached.verify(token);
    expect(checks()).toBe(2);
  });

  it("should keep at most maxEntries tokens, dropping the least recently used", async () => {
    const { verifier, checks } = countingVerifier();
    const cached = cachingVerifier(verifier, { maxEntries: 2, ttlMs: 60_000, clock: Date.now });
    const [a, b, c] = await Promise.all([1, 2, 3].map(() => signHs256(TEST_JWT_SECRET, { sub: newUserId("cache"), expiresIn: "1h" })));
    await cached.verify(a!);
    await cached.verify(b!);
    await cached.verify(a!); // a is now the most recently used
    await cached.verify(c!); // evicts b
    expect(checks()).toBe(3);
    await cached.verify(a!);
    expect(checks()).toBe(3);
    await cached.verify(b!);
    expect(checks()).toBe(4);
  });

  it("should not cache a rejected token", async () => {
    const { verifier, checks } = countingVerifier();
    const cached = cachingVerifier(verifier, { maxEntries: 10, ttlMs: 60_000, clock: Date.now });
    const forged = await signHs256(`other-${crypto.randomUUID()}-${crypto.randomUUID()}`, { sub: newUserId("cache"), expiresIn: "1h" });
    expect((await rejection(cached.verify(forged))).message).toBe("The token's signature is invalid");
    expect((await rejection(cached.verify(forged))).message).toBe("The token's signature is invalid");
    expect(checks()).toBe(2);
  });

  it("should count AUTH_MAX_TOKEN_AGE from each verification, cached or not", async () => {
    const clock = clockAt();
    const verifier = createVerifier({ ...AUTH, maxTokenAgeSeconds: 10 }, { clock: clock.now });
    const token = await signHs256(TEST_JWT_SECRET, { sub: newUserId("cache"), expiresIn: "1h" });
    const start = clock.now();
    expect((await verifier.verify(token)).expiresAt).toBeCloseTo(start / 1000 + 10, 3);
    clock.set(start + 5000);
    expect((await verifier.verify(token)).expiresAt).toBeCloseTo(start / 1000 + 15, 3);
  });
});
