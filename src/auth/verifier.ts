import { randomBytes } from "node:crypto";
import { createRemoteJWKSet, errors, jwtVerify, SignJWT, type JWTPayload, type JWTVerifyGetKey } from "jose";
import { unauthenticated } from "../lib/errors.js";
import { cachingVerifier } from "./token-cache.js";
import type { TokenVerifier, Viewer } from "./viewer.js";
import { parseDuration } from "../lib/duration.js";

export type { TokenVerifier, Viewer } from "./viewer.js";

/** How tokens are verified (AUTH_* settings; see src/boot/config.ts). */
export interface AuthSettings {
  jwtSecret: string | undefined;
  jwksUrl: string | undefined;
  issuer: string | undefined;
  audience: string | undefined;
  /** AUTH_MAX_TOKEN_AGE: the longest a socket or subscription lives, whatever the token's exp says. */
  maxTokenAgeSeconds: number | undefined;
}

/** Asymmetric algorithms a JWKS may publish; "none" and HMAC are never taken from a JWKS. */
const JWKS_ALGORITHMS = ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"];

export interface VerifierOptions {
  /** Milliseconds since the epoch; what jose and the token cache compare exp with (tests move it). */
  clock?: () => number;
}

/** Verified tokens kept (see token-cache.ts); a bearer token is a few hundred bytes. */
export const TOKEN_CACHE_ENTRIES = 10_000;
/** The longest a verified token is trusted without checking its signature again. */
export const TOKEN_CACHE_TTL_MS = 60_000;

export function createVerifier(auth: AuthSettings, options: VerifierOptions = {}): TokenVerifier {
  const clock = options.clock ?? Date.now;
  const verifier = cachingVerifier(signatureVerifier(auth, clock), { maxEntries: TOKEN_CACHE_ENTRIES, ttlMs: TOKEN_CACHE_TTL_MS, clock });
  const maxAge = auth.maxTokenAgeSeconds;
  if (maxAge === undefined) return verifier;
  return {
    // Counted from now, when the socket or subscription is accepted, not from the token's iat (so outside the cache).
    verify: async (token) => {
      const viewer = await verifier.verify(token);
      return { ...viewer, expiresAt: Math.min(viewer.expiresAt, clock() / 1000 + maxAge) };
    },
  };
}

function signatureVerifier(auth: AuthSettings, clock: () => number): TokenVerifier {
  const options = { issuer: auth.issuer, audience: auth.audience, clock };
  if (auth.jwtSecret !== undefined) {
    const key = new TextEncoder().encode(auth.jwtSecret);
    return { verify: (token) => verifyWith(token, key, { ...options, algorithms: ["HS256"] }) };
  }
  if (auth.jwksUrl !== undefined) {
    const jwks = createRemoteJWKSet(new URL(auth.jwksUrl));
    return { verify: (token) => verifyWith(token, jwks, { ...options, algorithms: JWKS_ALGORITHMS }) };
  }
  throw new Error("createVerifier needs AUTH_JWT_SECRET or AUTH_JWKS_URL");
}

async function verifyWith(
  token: string,
  key: Uint8Array | JWTVerifyGetKey,
  settings: { issuer: string | undefined; audience: string | undefined; algorithms: string[]; clock: () => number },
): Promise<Viewer> {
  const { clock, ...rest } = settings;
  const options = { ...rest, currentDate: new Date(clock()) };
  let payload: JWTPayload;
  try {
    // Two calls only because jose's overloads take one key type each.
    ({ payload } = typeof key === "function" ? await jwtVerify(token, key, options) : await jwtVerify(token, key, options));
  } catch (error) {
    throw unauthenticated(describeJwtFailure(error));
  }
  if (typeof payload.sub !== "string" || payload.sub === "") {
    throw unauthenticated("The token has no subject (sub)");
  }
  if (!isUsableSubject(payload.sub)) {
    throw unauthenticated("The token's subject (sub) is not a valid user id");
  }
  // jose checks exp only when it is present; without one, a socket opened with the token would never have to close.
  if (payload.exp === undefined) throw unauthenticated("The token has no expiry (exp)");
  return { userId: payload.sub, expiresAt: payload.exp };
}

/** A `sub` that can own rows: Postgres text cannot hold NUL, and user ids are at most 255 characters. */
export function isUsableSubject(sub: string): boolean {
  return sub !== "" && !sub.includes("\u0000") && sub.length <= 255;
}

function describeJwtFailure(error: unknown): string {
  if (error instanceof errors.JWTExpired) return "The token has expired";
  if (error instanceof errors.JWSSignatureVerificationFailed) return "The token's signature is invalid";
  if (error instanceof errors.JOSEAlgNotAllowed) return "The token is signed with an algorithm that is not accepted";
  if (error instanceof errors.JWTClaimValidationFailed) return `The token's ${error.claim} claim is invalid`;
  if (error instanceof errors.JWKSNoMatchingKey) return "The token is signed with an unknown key";
  return "The token is malformed";
}

/** Reads `Bearer <token>`; anything else is UNAUTHENTICATED. */
export function bearerToken(header: string | null | undefined): string {
  if (header === null || header === undefined || header.trim() === "") {
    throw unauthenticated("Missing Authorization header: send `Authorization: Bearer <JWT>`");
  }
  const match = /^Bearer\s+(\S+)\s*$/i.exec(header);
  if (!match?.[1]) throw unauthenticated("The Authorization header must be `Bearer <JWT>`");
  return match[1];
}

/** A per-process HS256 secret for development; it never leaves this process except through dev tokens. */
export function randomDevSecret(): string {
  return randomBytes(32).toString("base64url");
}

/** An HS256 token (dev token, tests). expiresIn is required: the verifier refuses a token without exp. */
export async function signHs256(
  secret: string,
  claims: { sub: string; expiresIn: string | number; issuer?: string; audience?: string },
): Promise<string> {
  // One reading of the clock for iat and a relative exp, so exp − iat is exactly the duration asked for
  // (jose reads the clock once per setter, and a second can tick over between them).
  const now = Math.floor(Date.now() / 1000);
  const relative = typeof claims.expiresIn === "string" ? parseDuration(claims.expiresIn) : undefined;
  let jwt = new SignJWT({})
    .setProtectedHeader({ alg: "HS256", typ: "JWT" })
    .setSubject(claims.sub)
    .setIssuedAt(now)
    .setExpirationTime(relative === undefined ? claims.expiresIn : now + relative);
  if (claims.issuer !== undefined) jwt = jwt.setIssuer(claims.issuer);
  if (claims.audience !== undefined) jwt = jwt.setAudience(claims.audience);
  return jwt.sign(new TextEncoder().encode(secret));
}
