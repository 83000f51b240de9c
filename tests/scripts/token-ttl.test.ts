import { decodeJwt } from "jose";
import { afterAll, describe, it } from "vitest";
import { runScript, stopAll, type Program } from "../helpers/process.js";
import { TEST_JWT_SECRET } from "../helpers/tokens.js";

// --ttl is parsed by parseTtl in scripts/token.ts, a parser of its own beside AUTH_MAX_TOKEN_AGE's in
// src/boot/config.ts (tests/boot/durations.test.ts). Only the command line reaches it. Cases marked
// "unlike AUTH_MAX_TOKEN_AGE" are where the two disagree today.

const FORMAT = "--ttl must be a whole number followed by s, m, h or d (e.g. 30s, 15m, 1h, 7d), got";

describe("npm run token -- --ttl", () => {
  const started: Program[] = [];

  afterAll(async () => {
    await stopAll(started);
  });

  /** Runs the command with only a signing secret; no server or database is needed. `--ttl=` so that "-5m" reaches parseTtl. */
  function token(ttl: string) {
    return runScript("scripts/token.ts", { args: ["--sub", "ttl-user", `--ttl=${ttl}`], env: { AUTH_JWT_SECRET: TEST_JWT_SECRET } }, started);
  }

  const lifetimes: [string, number][] = [
    ["30s", 30],
    ["7d", 604_800],
    [" 2h ", 7200],
    ["8760h", 31_536_000],
    ["365d", 31_536_000],
  ];

  it.concurrent.for(lifetimes)("should sign a token that lives %j as %i seconds", async ([ttl, seconds], { expect }) => {
    const program = token(ttl);
    expect(await program.exit()).toEqual({ code: 0, signal: null });
    expect(program.stderr()).toBe("");
    const claims = decodeJwt(program.stdout().trim());
    expect((claims.exp ?? 0) - (claims.iat ?? 0)).toBe(seconds);
  });

  const refusals: [string, string][] = [
    ["3600", `${FORMAT} "3600"`], // unlike AUTH_MAX_TOKEN_AGE: a unit is required
    ["1H", `${FORMAT} "1H"`], // unlike AUTH_MAX_TOKEN_AGE: lower-case units only
    ["12 h", `${FORMAT} "12 h"`], // unlike AUTH_MAX_TOKEN_AGE: no space before the unit
    ["1.5h", `${FORMAT} "1.5h"`],
    ["-5m", `${FORMAT} "-5m"`],
    ["1234567890s", `${FORMAT} "1234567890s"`], // at most nine digits
    ["0s", "--ttl must be longer than 0s"],
    ["366d", '--ttl must be at most 365d, got "366d"'],
    ["31536001s", '--ttl must be at most 365d, got "31536001s"'],
  ];

  it.concurrent.for(refusals)("should refuse --ttl %j with one line and exit code 1", async ([ttl, line], { expect }) => {
    const program = token(ttl);
    expect(await program.exit()).toEqual({ code: 1, signal: null });
    expect(program.stderr()).toBe(`${line}\n`);
    expect(program.stdout()).toBe("");
  });
});
