import { execFileSync } from "node:child_process";
import { existsSync } from "node:fs";
import { chromium, type Browser } from "playwright-core";

/**
 * Debian's Chromium, driven by playwright-core: Playwright's own browser
 * download cannot be reached here, and is not needed. CHROMIUM_PATH wins,
 * else `chromium` or `chromium-browser` on PATH.
 */
export function chromiumPath(): string | undefined {
  const configured = process.env.CHROMIUM_PATH;
  if (configured) return existsSync(configured) ? configured : undefined;
  for (const name of ["chromium", "chromium-browser"]) {
    try {
      return execFileSync("which", [name], { encoding: "utf8" }).trim() || undefined;
    } catch {
      // not on PATH
    }
  }
  return undefined;
}

export const MISSING_CHROMIUM = "Chromium not found: install it (`apt-get install -y chromium`) or set CHROMIUM_PATH. Browser tests are skipped.";

/** Locally a missing Chromium skips the browser tests; under CI=true it fails the run. */
export function browserAvailable(): boolean {
  const found = chromiumPath() !== undefined;
  if (!found && process.env.CI === "true") throw new Error(MISSING_CHROMIUM.replace("are skipped", "are required under CI=true"));
  if (!found) console.warn(MISSING_CHROMIUM);
  return found;
}

/** `args` go to Chromium besides the defaults (e.g. --host-resolver-rules, to reach made-up host names on loopback). */
export async function launchChromium(args: readonly string[] = []): Promise<Browser> {
  const executablePath = chromiumPath();
  if (!executablePath) throw new Error(MISSING_CHROMIUM);
  // As root (CI), Chromium refuses to start with its sandbox on.
  return chromium.launch({ executablePath, args: ["--no-sandbox", "--disable-dev-shm-usage", ...args] });
}
