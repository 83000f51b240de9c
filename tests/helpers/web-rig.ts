import type { Browser, BrowserContext, Page } from "playwright-core";
import { afterEach } from "vitest";
import { closeDb, type Db } from "../../src/db/client.js";
import { ensureWebBuild, WEB_DIST_DIR } from "../../src/server/web-ui/build.js";
import { launchChromium, watchedPage } from "./browser.js";
import { cohereAssistant } from "./chat.js";
import { newUserId, testDb } from "./db.js";
import { startFakeCohere, type FakeCohere } from "./fake-cohere.js";
import { capturingLogger, startTestServer, type TestServer, type TestUser } from "./server.js";
import { tokenFor } from "./tokens.js";

/**
 * What a browser test of the web client stands on: the fake Cohere, a real
 * server on port 0 serving the built client with `owner`'s token as the dev
 * token, one Chromium for the file, and a watched page already connected.
 */
export interface WebRig {
  fake: FakeCohere;
  db: Db;
  server: TestServer;
  browser: Browser;
  context: BrowserContext;
  page: Page;
  owner: TestUser;
  /** The page's uncaught exceptions, console errors and CSP violations. */
  pageProblems: string[];
  /** Every line the server and its assistant logged (no message text is ever logged), printed when a test fails. */
  serverLog: string[];
  /** Opens the app in `page` (a new page of the rig's context when omitted) and waits until it is live. */
  openApp(page?: Page): Promise<Page>;
  close(): Promise<void>;
}

export interface WebRigOptions {
  /** Prefix of the owner's user id (a random suffix is added). */
  user: string;
  assistant?: Parameters<typeof cohereAssistant>[1];
}

/** Starts the rig; if a part fails to start, those already started are stopped before the error is thrown. */
export async function startWebRig(options: WebRigOptions): Promise<WebRig> {
  const stops: (() => Promise<unknown>)[] = [];
  const close = async () => {
    for (const stop of stops.splice(0).reverse()) await stop();
  };
  try {
    await ensureWebBuild();
    const fake = await startFakeCohere();
    stops.push(() => fake.close());
    const db = testDb();
    stops.push(() => closeDb(db));
    const id = newUserId(options.user);
    const token = await tokenFor(id);
    const { logger, lines: serverLog } = capturingLogger();
    const server = await startTestServer({
      db,
      logger,
      // A browser test is about the page, not the model's deadlines: on a loaded CI machine the default 5 s per
      // model call could run out (then retried against an empty script queue) and fail the test for nothing it checks.
      assistant: cohereAssistant(fake, { logger, callTimeoutMs: 30_000, turnTimeoutMs: 60_000, ...options.assistant }),
      webUi: { distDir: WEB_DIST_DIR, devToken: token },
    });
    stops.push(() => server.close());
    const owner: TestUser = { id, token, gql: (query, variables) => server.request(query, variables, token) };
    const browser = await launchChromium();
    stops.push(() => browser.close());
    const pageProblems: string[] = [];
    const { context, page } = await watchedPage(browser, pageProblems);
    const openApp = async (target?: Page) => {
      const opened = target ?? (await context.newPage());
      await opened.goto(server.baseUrl);
      await opened.locator('[data-testid="connection-status"][data-state="connected"]').waitFor();
      return opened;
    };
    await openApp(page);
    return { fake, db, server, browser, context, page, owner, pageProblems, serverLog, openApp, close };
  } catch (error) {
    await close();
    throw error;
  }
}

/**
 * After a failed test, prints what explains a browser flake that cannot be
 * rerun: the server's log, the page's problems, and how many model calls the
 * fake Cohere answered.
 */
export function explainFailures(rig: () => WebRig | undefined): void {
  afterEach(async (context) => {
    const current = rig();
    if (!current || context.task.result?.state !== "fail") return;
    const turns = await current.db.turn.findMany({
      where: { userId: current.owner.id },
      orderBy: { startedAt: "asc" },
      select: { status: true, stopCode: true, approvals: { select: { toolCallId: true, status: true } } },
    });
    const shown = await current.page
      .locator('[data-testid="chat-message"]')
      .evaluateAll((nodes) => nodes.map((node) => `${node.getAttribute("data-role")}: ${node.textContent?.slice(0, 80)}`))
      .catch((error: unknown) => [`(could not read the page: ${String(error)})`]);
    // Each request's own line is noise here; what the server had to say about the work is not.
    const said = current.serverLog.filter((line) => !line.includes('"msg":"request"'));
    console.error(
      [
        `— ${context.task.name}: what the rig saw —`,
        `fake Cohere requests: ${current.fake.requests.length}, replies still queued: ${current.fake.pending()}, aborted: ${current.fake.requests.filter((request) => request.aborted).length}`,
        `the owner's turns: ${JSON.stringify(turns)}`,
        `page problems: ${JSON.stringify(current.pageProblems)}`,
        `messages on the page: ${JSON.stringify(shown)}`,
        "server log (requests left out):",
        ...said.slice(-200),
      ].join("\n"),
    );
  });
}
