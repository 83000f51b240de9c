import type { Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Db } from "../../src/db/client.js";
import { parseId } from "../../src/lib/ids.js";
import { axeViolations, browserAvailable } from "../helpers/browser.js";
import { errorReply, textReply, type FakeCohere } from "../helpers/fake-cohere.js";
import type { TestUser } from "../helpers/server.js";
import { explainFailures, startWebRig, type WebRig } from "../helpers/web-rig.js";

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

describe.runIf(browserAvailable())("the conversation list and Retry, in Chromium against a real server", () => {
  let rig: WebRig;
  let fake: FakeCohere;
  let db: Db;
  let page: Page;
  let owner: TestUser;
  let pageProblems: string[];

  beforeAll(async () => {
    rig = await startWebRig({ user: "web-list" });
    ({ fake, db, page, owner, pageProblems } = rig);
  }, 120_000);

  afterAll(() => rig?.close());
  explainFailures(() => rig);

  it("should show at once a conversation created in another tab, and one created, renamed and deleted through the API", async () => {
    const other = await rig.openApp();
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

  it("should rename a conversation in place from the list, and a second page shows the new title at once", async () => {
    const created = await owner.gql<{ createConversation: { id: string } }>(CREATE, { title: "Groceries" });
    const id = parseId(created.data!.createConversation.id, "id", "Conversation");
    const second = await rig.openApp();
    try {
      await listItem(second, "Groceries").waitFor();
      await listItem(page, "Groceries").getByRole("button", { name: "Rename conversation Groceries" }).click();
      const input = page.getByRole("textbox", { name: "New title for Groceries" });
      await expect(input.inputValue()).resolves.toBe("Groceries");
      expect(await axeViolations(page)).toEqual([]);

      // Escape leaves it as it was.
      await input.fill("Not this");
      await input.press("Escape");
      await listItem(page, "Groceries").waitFor();
      expect((await db.conversation.findUniqueOrThrow({ where: { id } })).title).toBe("Groceries");

      await listItem(page, "Groceries").getByRole("button", { name: "Rename conversation Groceries" }).click();
      await page.getByRole("textbox", { name: "New title for Groceries" }).fill("Weekly shop");
      await page.getByRole("textbox", { name: "New title for Groceries" }).press("Enter");
      await listItem(second, "Weekly shop").waitFor();
      expect(await listItem(second, "Groceries").count()).toBe(0);
      await listItem(page, "Weekly shop").waitFor();
      expect((await db.conversation.findUniqueOrThrow({ where: { id } })).title).toBe("Weekly shop");
    } finally {
      await second.close();
    }
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
