import "../src/boot/load-env.js";
import { parseArgs } from "node:util";
import { isUsableSubject, signHs256 } from "../src/auth/verifier.js";
import { loadConfigOrExit } from "../src/boot/startup-errors.js";
import { durationRule, durationWithin, formatDuration, type DurationBounds } from "../src/lib/duration.js";

// `npm run -s token -- --sub alice [--ttl 1h]`: a JWT the API accepts, signed
// with AUTH_JWT_SECRET. stdout carries the token and nothing else, so
// `TOKEN=$(npm run -s token -- --sub alice)` works; a refusal is one line on stderr.

const USAGE = "usage: npm run -s token -- --sub <user id> [--ttl 1h]";
/** A longer-lived bearer token is a standing credential: mint a new one instead. */
const TTL_BOUNDS: DurationBounds = { minSeconds: 1, maxSeconds: 365 * 86_400 };

function refuse(message: string): never {
  process.stderr.write(`${message}\n`);
  process.exit(1);
}

/** Seconds for "3600", "30s", "15m", "1h", "7d", as AUTH_MAX_TOKEN_AGE reads them; anything else is refused. */
function parseTtl(raw: string): number {
  return durationWithin(raw, TTL_BOUNDS) ?? refuse(`--ttl must be ${durationRule(TTL_BOUNDS, "1h")}, got ${JSON.stringify(raw)}`);
}

let args: { sub?: string; ttl?: string; help?: boolean };
try {
  ({ values: args } = parseArgs({
    options: { sub: { type: "string" }, ttl: { type: "string" }, help: { type: "boolean", short: "h" } },
    strict: true,
    allowPositionals: false,
  }));
} catch (error) {
  refuse(`${error instanceof Error ? error.message : String(error)}; ${USAGE}`);
}
if (args.help) {
  process.stdout.write(`${USAGE}\n  --ttl: seconds (3600) or 30s, 15m, 1h (default), 7d…; at most ${formatDuration(TTL_BOUNDS.maxSeconds)}\n`);
  process.exit(0);
}
const sub = args.sub;
if (sub === undefined || sub.trim() === "") refuse(`--sub is required: the user id the token is for; ${USAGE}`);
if (sub !== sub.trim() || !isUsableSubject(sub)) {
  refuse("--sub must be a user id of at most 255 characters, without NUL or surrounding whitespace");
}
const ttlSeconds = parseTtl(args.ttl ?? "1h");

const config = loadConfigOrExit();
const { jwtSecret, jwksUrl, issuer, audience } = config.auth;
if (jwtSecret === undefined && jwksUrl !== undefined) {
  refuse(
    "AUTH_JWKS_URL is set: tokens for a JWKS issuer come from that issuer, which holds the signing key; " +
      "this command signs only with AUTH_JWT_SECRET",
  );
}
if (jwtSecret === undefined) {
  refuse(
    "AUTH_JWT_SECRET is not set: set it (at least 32 bytes) to the secret the server uses, in the environment or .env; " +
      "the dev server's random per-process secret cannot be used, as no other process knows it",
  );
}

const token = await signHs256(jwtSecret, { sub, expiresIn: `${ttlSeconds}s`, issuer, audience });
process.stdout.write(`${token}\n`);
