import { createVerifier, signHs256, type TokenVerifier } from "../../src/auth/verifier.js";
import type { Config } from "../../src/boot/config.js";

/** Made per test run; never a fixed value in the repo. */
export const TEST_JWT_SECRET = `test-${crypto.randomUUID()}-${crypto.randomUUID()}`;

export function tokenFor(userId: string, options: { expiresIn?: string | number; secret?: string } = {}): Promise<string> {
  return signHs256(options.secret ?? TEST_JWT_SECRET, { sub: userId, expiresIn: options.expiresIn ?? "1h" });
}

/** The verifier of TEST_JWT_SECRET, with other auth settings where given. */
export function testVerifier(overrides: Partial<Config["auth"]> = {}): TokenVerifier {
  return createVerifier({
    jwtSecret: TEST_JWT_SECRET,
    jwksUrl: undefined,
    issuer: undefined,
    audience: undefined,
    maxTokenAgeSeconds: undefined,
    ...overrides,
  });
}
