import { signHs256 } from "../../src/auth.js";

/** Made per test run; never a fixed value in the repo. */
export const TEST_JWT_SECRET = `test-${crypto.randomUUID()}-${crypto.randomUUID()}`;

export function tokenFor(userId: string, options: { expiresIn?: string | number; secret?: string } = {}): Promise<string> {
  return signHs256(options.secret ?? TEST_JWT_SECRET, { sub: userId, expiresIn: options.expiresIn ?? "1h" });
}
