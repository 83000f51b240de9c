import { execFileSync } from "node:child_process";
import { existsSync } from "node:fs";
import { createRequire } from "node:module";
import { chromium, type Browser, type BrowserContext, type Page } from "playwright-core";

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

const AXE_SOURCE: string = (createRequire(import.meta.url)("axe-core") as { source: string }).source;

/** Runs axe-core in the page; the serious and critical violations, by rule. */
export async function axeViolations(page: Page): Promise<string[]> {
  // Evaluated through the DevTools protocol, which the page's CSP (no inline script) does not govern.
  await page.evaluate(AXE_SOURCE);
  const violations = await page.evaluate(async () => {
    const axe = (
      window as unknown as {
        axe: { run(context: Document): Promise<{ violations: { id: string; impact: string | null; nodes: { target: unknown }[] }[] }> };
      }
    ).axe;
    const result = await axe.run(document);
    return result.violations.map((v) => ({ id: v.id, impact: v.impact, targets: v.nodes.map((n) => JSON.stringify(n.target)) }));
  });
  return violations.filter((v) => v.impact === "serious" || v.impact === "critical").map((v) => `${v.id}: ${v.targets.join(" ")}`);
}

/**
 * A 1280×800 page whose uncaught exceptions and CSP violations land in `problems`, and its
 * console errors in `consoleErrors` (when given; else in `problems` too). Waits are 15 s:
 * shorter than a test's own timeout, so a wait that fails names what it waited for.
 */
export async function watchedPage(browser: Browser, problems: string[], consoleErrors?: string[]): Promise<{ context: BrowserContext; page: Page }> {
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  context.setDefaultTimeout(15_000);
  const page = await context.newPage();
  await page.addInitScript(() => {
    document.addEventListener("securitypolicyviolation", (event) => {
      console.error(`CSP violation: ${event.violatedDirective} ${event.blockedURI}`);
    });
  });
  page.on("pageerror", (error) => problems.push(`pageerror: ${error.message}`));
  page.on("console", (message) => {
    if (message.type() !== "error") return;
    if (!consoleErrors || message.text().startsWith("CSP violation")) problems.push(message.text());
    consoleErrors?.push(message.text());
  });
  return { context, page };
}
