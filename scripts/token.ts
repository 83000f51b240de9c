import "../src/boot/load-env.js";
import { parseArgs } from "node:util";
import { isUsableSubject, signHs256 } from "../src/auth/verifier.js";
import { loadConfigOrExit } from "../src/boot/startup-errors.js";

// `npm run -s token -- --sub alice [--ttl 1h]`: a JWT the API accepts, signed
// with AUTH_JWT_SECRET. stdout carries the token and nothing else, so
// `TOKEN=$(npm run -s token -- --sub alice)` works; a refusal is one line on stderr.

const USAGE = "usage: npm run -s token -- --sub <user id> [--ttl 1h]";
const UNIT_SECONDS: Record<string, number> = { s: 1, m: 60, h: 3600, d: 86_400 };
/** A longer-lived bearer token is a standing credential: mint a new one instead. */
const MAX_TTL_DAYS = 365;

function refuse(message: string): never {
  process.stderr.write(`${message}\n`);
  process.exit(1);
}

/** Seconds for "30s", "15m", "1h", "7d"; anything else is refused. */
function parseTtl(raw: string): number {
  const match = /^(\d{1,9})([smhd])$/.exec(raw.trim());
  const amount = match?.[1];
  const unit = match?.[2];
  if (amount === undefined || unit === undefined) {
    refuse(`--ttl must be a whole number followed by s, m, h or d (e.g. 30s, 15m, 1h, 7d), got ${JSON.stringify(raw)}`);
  }
  const seconds = Number(amount) * (UNIT_SECONDS[unit] ?? 1);
  if (seconds === 0) refuse("--ttl must be longer than 0s");
  if (seconds > MAX_TTL_DAYS * 86_400) refuse(`--ttl must be at most ${MAX_TTL_DAYS}d, got ${JSON.stringify(raw)}`);
  return seconds;
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
  process.stdout.write(`${USAGE}\n  --ttl: 30s, 15m, 1h (default), 7d…; at most ${MAX_TTL_DAYS}d\n`);
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
