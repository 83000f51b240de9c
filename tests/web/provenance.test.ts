import type { Browser, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Db } from "../../src/db/client.js";
import { parseId, toGlobalId } from "../../src/lib/ids.js";
import { ensureWebBuild, WEB_DIST_DIR } from "../../src/server/web-ui/build.js";
import { browserAvailable, launchChromium, watchedPage } from "../helpers/browser.js";
import { cohereAssistant } from "../helpers/chat.js";
import { newUserId, testDb } from "../helpers/db.js";
import { startFakeCohere, textReply, toolCallReply, type FakeCohere } from "../helpers/fake-cohere.js";
import { startTestServer, type TestServer } from "../helpers/server.js";
import { tokenFor } from "../helpers/tokens.js";

/**
 * History and undo in the web client, in Chromium against a real server and
 * the fake Cohere: a reply whose turn changed tasks lists what it changed with
 * an Undo, disabled with the reason when the undo would conflict; a task shows
 * its history.
 */
describe.runIf(browserAvailable())("history and undo in the web client", () => {
  let fake: FakeCohere;
  let db: Db;
  let server: TestServer;
  let browser: Browser;
  let page: Page;
  let owner: { id: string; token: string };
  const pageProblems: string[] = [];

  beforeAll(async () => {
    await ensureWebBuild();
    fake = await startFakeCohere();
    db = testDb();
    const id = newUserId("web-undo");
    owner = { id, token: await tokenFor(id) };
    server = await startTestServer({
      db,
      assistant: cohereAssistant(fake, { approvalPolicy: "none" }),
      webUi: { distDir: WEB_DIST_DIR, devToken: owner.token },
    });
    browser = await launchChromium();
    ({ page } = await watchedPage(browser, pageProblems));
    await page.goto(server.baseUrl);
    await page.locator('[data-testid="connection-status"][data-state="connected"]').waitFor();
  }, 120_000);

  afterAll(async () => {
    await browser?.close();
    await server?.close();
    await fake?.close();
    await db?.$disconnect();
  });

  async function say(content: string): Promise<void> {
    await page.getByTestId("chat-input").fill(content);
    await page.getByTestId("chat-send").click();
  }

  const taskItem = (title: string) => page.getByTestId("task-item").filter({ hasText: title });

  it("should list what a reply's turn changed and undo it, the task leaving the list", async () => {
    fake.enqueue(toolCallReply([{ name: "add_task", args: { title: "buy oat milk" } }], "I will add it."), textReply("Added buy oat milk."));
    await say("add buy oat milk");
    await taskItem("buy oat milk").waitFor();
    const changes = page.getByTestId("turn-changes").last();
    await changes.getByTestId("turn-change").filter({ hasText: "Added “buy oat milk”" }).waitFor();
    const undo = changes.getByTestId("turn-undo");
    await expect.poll(() => undo.isEnabled(), { timeout: 15_000 }).toBe(true);

    await undo.click();
    await taskItem("buy oat milk").waitFor({ state: "detached" });
    await page.locator('[data-testid="turn-changes"][data-undone="true"]').filter({ hasText: "buy oat milk" }).waitFor();
    expect(await db.task.count({ where: { userId: owner.id, title: "buy oat milk" } })).toBe(0);
    const turnId = await changes.getAttribute("data-turn-id");
    expect((await db.turn.findUniqueOrThrow({ where: { id: parseId(turnId!, "id", "Turn") } })).undoneAt).not.toBeNull();
  });

  it("should disable Undo with the reason once a task of the turn changed since, and show the task's history", async () => {
    const added = await server.request<{ addTask: { id: string } }>(
      `mutation { addTask(input: { title: "call the bank" }) { id } }`,
      {},
      owner.token,
    );
    const taskId = added.data!.addTask.id;
    await taskItem("call the bank").waitFor();
    fake.enqueue(
      toolCallReply([{ name: "update_task", args: { task_id: taskId, title: "call the bank today" } }], "Renaming."),
      textReply("Renamed it."),
    );
    await say("rename the bank task");
    const item = taskItem("call the bank today");
    await item.waitFor();
    const changes = page.getByTestId("turn-changes").filter({ hasText: "Renamed “call the bank” to “call the bank today”" });
    await changes.waitFor();
    await expect.poll(() => changes.getByTestId("turn-undo").isEnabled(), { timeout: 15_000 }).toBe(true);

    // The user completes it in the task list: the turn's undo would now overwrite that.
    await item.getByTestId("task-toggle").click();
    await page.locator(`[data-testid="task-item"][data-task-id="${taskId}"][data-completed="true"]`).waitFor();
    await changes.getByTestId("turn-undo-reason").filter({ hasText: "1 of the tasks it changed was changed again since" }).waitFor();
    expect(await changes.getByTestId("turn-undo").isDisabled()).toBe(true);

    await item.getByTestId("task-history-toggle").click();
    const history = item.getByTestId("task-history-item");
    await expect.poll(() => history.allTextContents(), { timeout: 15_000 }).toHaveLength(3);
    const entries = await history.evaluateAll((items) =>
      items.map((li) => [(li as HTMLElement).dataset.actor, (li as HTMLElement).dataset.kind, li.textContent]),
    );
    expect(entries.map(([actor, kind]) => [actor, kind])).toEqual([
      ["USER", "UPDATED"],
      ["ASSISTANT", "UPDATED"],
      ["USER", "CREATED"],
    ]);
    expect(entries[0]![2]).toContain("You: Completed “call the bank today”");
    expect(entries[1]![2]).toContain("The assistant: Renamed “call the bank” to “call the bank today”");
    expect(await db.task.findUniqueOrThrow({ where: { id: parseId(taskId, "id", "Task") } })).toMatchObject({
      title: "call the bank today",
      completed: true,
    });
    expect(taskId).toBe(toGlobalId("Task", parseId(taskId, "id", "Task")));
    expect(pageProblems).toEqual([]);
  });
});
