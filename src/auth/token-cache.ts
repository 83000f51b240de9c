import type { TokenVerifier, Viewer } from "./viewer.js";

/**
 * Verified tokens by their text, so a client that sends the same bearer token
 * on every request pays for one signature check (HMAC through WebCrypto, or
 * RSA/EC) instead of one per request: under load that check was the largest
 * single cost of a request after the socket writes (BENCHMARKS.md, B1).
 *
 * Never accepts an expired token: an entry is used only while the clock is
 * before the token's exp (jose's own rule: valid while now < exp), and for at
 * most `ttlMs`, so a key removed from a JWKS stops being trusted within that
 * time. Failures are not cached. At most `maxEntries` tokens are kept; the
 * least recently used goes first.
 */
export interface TokenCacheOptions {
  maxEntries: number;
  ttlMs: number;
  /** Milliseconds since the epoch (tests move it). */
  clock: () => number;
}

interface Entry {
  viewer: Viewer;
  /** Milliseconds since the epoch: the entry is used only before this. */
  until: number;
}

export function cachingVerifier(inner: TokenVerifier, options: TokenCacheOptions): TokenVerifier {
  const entries = new Map<string, Entry>();
  return {
    verify: async (token) => {
      const hit = entries.get(token);
      if (hit) {
        entries.delete(token);
        if (options.clock() < hit.until) {
          // Re-inserted: a Map iterates in insertion order, so the first key is the least recently used.
          entries.set(token, hit);
          return { ...hit.viewer };
        }
      }
      const viewer = await inner.verify(token);
      const until = Math.min(viewer.expiresAt * 1000, options.clock() + options.ttlMs);
      if (entries.size >= options.maxEntries) {
        const oldest = entries.keys().next();
        if (!oldest.done) entries.delete(oldest.value);
      }
      entries.set(token, { viewer, until });
      return { ...viewer };
    },
  };
}
