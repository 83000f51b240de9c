import type { Browser, BrowserContext, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Db } from "../../src/db/client.js";
import { parseId } from "../../src/lib/ids.js";
import { ensureWebBuild, WEB_DIST_DIR } from "../../src/server/web-ui/build.js";
import { axeViolations, browserAvailable, launchChromium, watchedPage } from "../helpers/browser.js";
import { cohereAssistant } from "../helpers/chat.js";
import { newUserId, testDb } from "../helpers/db.js";
import { errorReply, startFakeCohere, textReply, type FakeCohere } from "../helpers/fake-cohere.js";
import { startTestServer, type TestServer, type TestUser } from "../helpers/server.js";
import { tokenFor } from "../helpers/tokens.js";

/**
 * The conversation list follows conversationChanged, and a failed turn's
 * Retry survives a reload: real Chromium, a real server on the test database,
 * the fake Cohere.
 */

const CREATE = `mutation Create($title: String) { createConversation(input: { title: $title }) { id title } }`;
const RENAME = `mutation Rename($input: UpdateConversationInput!) { updateConversation(input: $input) { id title } }`;
const DELETE = `mutation Delete($id: ID!) { deleteConversation(id: $id) }`;

function listItem(page: Page, title: string) {
  return page.getByTestId("conversation-item").filter({ has: page.getByRole("button", { name: title, exact: true }) });
}

async function openPage(context: BrowserContext, server: TestServer): Promise<Page> {
  const page = await context.newPage();
  await page.goto(server.baseUrl);
  await page.locator('[data-testid="connection-status"][data-state="connected"]').waitFor();
  return page;
}

describe.runIf(browserAvailable())("the conversation list and Retry, in Chromium against a real server", () => {
  let fake: FakeCohere;
  let db: Db;
  let server: TestServer;
  let browser: Browser;
  let context: BrowserContext;
  let page: Page;
  let owner: TestUser;
  const pageProblems: string[] = [];

  beforeAll(async () => {
    await ensureWebBuild();
    fake = await startFakeCohere();
    db = testDb();
    const id = newUserId("web-list");
    const token = await tokenFor(id);
    owner = { id, token, gql: (query, variables) => server.request(query, variables, token) };
    server = await startTestServer({ db, assistant: cohereAssistant(fake), webUi: { distDir: WEB_DIST_DIR, devToken: token } });
    browser = await launchChromium();
    ({ context, page } = await watchedPage(browser, pageProblems));
    await page.goto(server.baseUrl);
    await page.locator('[data-testid="connection-status"][data-state="connected"]').waitFor();
  }, 120_000);

  afterAll(async () => {
    await browser?.close();
    await server?.close();
    await fake?.close();
    await db?.$disconnect();
  });

  it("should show at once a conversation created in another tab, and one created, renamed and deleted through the API", async () => {
    const other = await openPage(context, server);
    const before = await page.getByTestId("conversation-item").count();
    await other.getByTestId("new-conversation").click();
    await page.getByTestId("conversation-item").nth(before).waitFor();
    expect(await page.getByTestId("conversation-item").count()).toBe(before + 1);
    await other.close();

    const created = await owner.gql<{ createConversation: { id: string } }>(CREATE, { title: "From the API" });
    const id = created.data!.createConversation.id;
    // Newest first: the conversation created last is at the top.
    await listItem(page, "From the API").waitFor();
    expect(await page.getByTestId("conversation-item").first().textContent()).toContain("From the API");

    await owner.gql(RENAME, { input: { id, title: "Renamed through the API" } });
    await listItem(page, "Renamed through the API").waitFor();
    expect(await listItem(page, "From the API").count()).toBe(0);

    // And a rename by SQL, which no API saw.
    await db.$executeRaw`UPDATE conversations SET title = 'Renamed in SQL' WHERE id = ${parseId(id, "id", "Conversation")}::uuid`;
    await listItem(page, "Renamed in SQL").waitFor();

    await owner.gql(DELETE, { id });
    await listItem(page, "Renamed in SQL").waitFor({ state: "detached" });
    expect(await page.getByTestId("conversation-item").count()).toBe(before + 1);
    expect(await axeViolations(page)).toEqual([]);
    expect(pageProblems).toEqual([]);
  });

  it("should offer Retry for a turn that failed, after a reload too, and resume it with the message stored once", async () => {
    await owner.gql(CREATE, { title: "Failing chat" });
    await listItem(page, "Failing chat").getByRole("button", { name: "Failing chat", exact: true }).click();
    // The model fails every call (after the SDK's retries): the turn ends FAILED with ASSISTANT_UNAVAILABLE.
    fake.setFallback(errorReply(503, "overloaded"));
    try {
      await page.getByTestId("chat-input").fill("plan my weekend");
      await page.getByTestId("chat-input").press("Enter");
      await page.getByText("The assistant is unavailable right now (ASSISTANT_UNAVAILABLE)").waitFor();
    } finally {
      fake.setFallback(undefined);
    }

    // A reload forgets everything the page held: the Retry is rebuilt from the server's turn.
    await page.reload();
    await page.locator('[data-testid="connection-status"][data-state="connected"]').waitFor();
    await listItem(page, "Failing chat").getByRole("button", { name: "Failing chat", exact: true }).click();
    await page.getByText("The assistant is unavailable right now (ASSISTANT_UNAVAILABLE)").waitFor();
    fake.enqueue(textReply("Saturday: hike. Sunday: rest."));
    await page.getByRole("button", { name: "Retry" }).click();
    await page.locator('[data-testid="chat-message"][data-status="COMPLETE"]').filter({ hasText: "Saturday: hike. Sunday: rest." }).waitFor();

    // The same turn resumed: one user message, one turn, now COMPLETED.
    const stored = await db.message.findMany({ where: { userId: owner.id, content: "plan my weekend" } });
    expect(stored).toHaveLength(1);
    const turns = await db.turn.findMany({ where: { userId: owner.id, userMessageId: stored[0]!.id } });
    expect(turns.map((turn) => turn.status)).toEqual(["COMPLETED"]);
    expect(await page.locator('[data-testid="chat-message"][data-role="user"]').filter({ hasText: "plan my weekend" }).count()).toBe(1);
    expect(await page.getByRole("button", { name: "Retry" }).count()).toBe(0);
    expect(pageProblems).toEqual([]);
  });
});
