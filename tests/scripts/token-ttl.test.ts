import { decodeJwt } from "jose";
import { afterAll, describe, it } from "vitest";
import { runScript, stopAll, type Program } from "../helpers/process.js";
import { TEST_JWT_SECRET } from "../helpers/tokens.js";

// --ttl and AUTH_MAX_TOKEN_AGE share one parser, src/lib/duration.ts (its grammar is unit-tested in
// tests/lib/duration.test.ts). These cases check the command line's wiring: what reaches the parser,
// the bounds (1 second to 365 days) and the one-line refusal.

const RULE = '--ttl must be a duration from 1 second to 365 days, in seconds ("3600") or with a unit s, m, h or d ("1h"), got';

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
    ["3600", 3600], // like AUTH_MAX_TOKEN_AGE: bare seconds
    ["1H", 3600], // any case
    ["12 h", 43_200], // a blank before the unit
  ];

  it.concurrent.for(lifetimes)("should sign a token that lives %j as %i seconds", async ([ttl, seconds], { expect }) => {
    const program = token(ttl);
    expect(await program.exit()).toEqual({ code: 0, signal: null });
    expect(program.stderr()).toBe("");
    const claims = decodeJwt(program.stdout().trim());
    expect((claims.exp ?? 0) - (claims.iat ?? 0)).toBe(seconds);
  });

  const refusals: [string, string][] = [
    ["1.5h", `${RULE} "1.5h"`],
    ["-5m", `${RULE} "-5m"`],
    ["1234567890s", `${RULE} "1234567890s"`],
    ["0s", `${RULE} "0s"`],
    ["366d", `${RULE} "366d"`],
    ["31536001s", `${RULE} "31536001s"`],
  ];

  it.concurrent.for(refusals)("should refuse --ttl %j with one line and exit code 1", async ([ttl, line], { expect }) => {
    const program = token(ttl);
    expect(await program.exit()).toEqual({ code: 1, signal: null });
    expect(program.stderr()).toBe(`${line}\n`);
    expect(program.stdout()).toBe("");
  });
});
