import type { Browser, BrowserContext, Page } from "playwright-core";
import type { Db } from "../../src/db/client.js";
import { ensureWebBuild, WEB_DIST_DIR } from "../../src/server/web-ui/build.js";
import { launchChromium, watchedPage } from "./browser.js";
import { cohereAssistant } from "./chat.js";
import { newUserId, testDb } from "./db.js";
import { startFakeCohere, type FakeCohere } from "./fake-cohere.js";
import { startTestServer, type TestServer, type TestUser } from "./server.js";
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
    stops.push(() => db.$disconnect());
    const id = newUserId(options.user);
    const token = await tokenFor(id);
    const server = await startTestServer({
      db,
      assistant: cohereAssistant(fake, options.assistant),
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
    return { fake, db, server, browser, context, page, owner, pageProblems, openApp, close };
  } catch (error) {
    await close();
    throw error;
  }
}
