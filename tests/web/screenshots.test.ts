import { mkdir } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import type { Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { axeViolations, browserAvailable } from "../helpers/browser.js";
import { textReply, toolCallReply } from "../helpers/fake-cohere.js";
import type { TestUser } from "../helpers/server.js";
import { explainFailures, startWebRig, type WebRig } from "../helpers/web-rig.js";

/**
 * The whole product on one screen, in Chromium against a real server and the
 * fake Cohere: a reply whose turn added a task (with what it changed and
 * Undo), a held call waiting for approval, and tasks with due dates in the
 * viewer's zone, priorities, labels and an overdue one. It checks that all of
 * it shows together, at desktop and phone width, and takes the README's
 * screenshots (`WEB_SCREENSHOT_DIR=docs npx vitest run tests/web/screenshots.test.ts`
 * refreshes docs/; by default they go to a temporary folder).
 */

const ZONE = "Europe/Berlin";
const DAY_MS = 86_400_000;
const ADD = `mutation Add($input: AddTaskInput!) { addTask(input: $input) { id } }`;

/** The calendar date `days` from now, as YYYY-MM-DD (UTC; the times below are far enough from midnight). */
function dateIn(days: number): string {
  return new Date(Date.now() + days * DAY_MS).toISOString().slice(0, 10);
}

describe.runIf(browserAvailable())("the web client's screenshots", () => {
  let rig: WebRig;
  let page: Page;
  let owner: TestUser;
  const dir = process.env.WEB_SCREENSHOT_DIR ?? path.join(tmpdir(), "todo-web-screenshots");

  beforeAll(async () => {
    rig = await startWebRig({ user: "web-shots" });
    ({ page, owner } = rig);
    await page.setViewportSize({ width: 1280, height: 820 });
    const zone = await owner.gql(`mutation { updateViewer(input: { timezone: "${ZONE}" }) { timezone } }`);
    expect(zone.errors).toBeUndefined();
    await mkdir(dir, { recursive: true });
  }, 120_000);

  afterAll(() => rig?.close());
  explainFailures(() => rig);

  async function addTask(input: Record<string, unknown>): Promise<string> {
    const added = await owner.gql<{ addTask: { id: string } }>(ADD, { input });
    expect(added.errors).toBeUndefined();
    return added.data!.addTask.id;
  }

  async function say(text: string): Promise<void> {
    await page.getByTestId("chat-input").fill(text);
    await page.getByTestId("chat-send").click();
  }

  async function setScene(): Promise<void> {
    await addTask({ title: "Call the plumber", dueAt: `${dateIn(-1)}T10:00:00Z`, priority: "MEDIUM", labels: ["home"] });
    await addTask({ title: "Dentist appointment", dueAt: `${dateIn(3)}T15:30:00Z`, priority: "HIGH", labels: ["health"] });
    await addTask({ title: "Pay rent", dueAt: `${dateIn(1)}T00:00:00Z`, dueAllDay: true, priority: "URGENT", labels: ["home", "money"] });
    const receipts = await addTask({ title: "Old receipts", labels: ["paperwork"] });
    await rig.openApp(page);

    rig.fake.enqueue(
      toolCallReply([{ name: "add_task", args: { title: "Buy oat milk", labels: ["errands"] } }]),
      textReply("Added “Buy oat milk” to your list."),
    );
    await say("remind me to buy oat milk");
    await page.locator('[data-testid="chat-message"][data-role="assistant"]').filter({ hasText: "Added “Buy oat milk”" }).waitFor();

    rig.fake.enqueue(
      toolCallReply([{ id: "call_shots_receipts", name: "delete_task", args: { task_id: receipts } }], "I will delete the old receipts task."),
      textReply("Deleted “Old receipts”."),
    );
    await say("I threw the old receipts away");
    await page.locator('[data-testid="approval-card"][data-tool-call-id="call_shots_receipts"]').waitFor();
  }

  it("should show a turn's changes, a held call and the task model together, axe-clean, at desktop and phone width", async () => {
    await setScene();

    await expect(page.getByTestId("approval-title").textContent()).resolves.toBe("Delete “Old receipts”");
    await page.getByTestId("turn-changes").first().waitFor();
    await page.getByTestId("turn-undo").first().waitFor();
    await expect(page.getByTestId("task-item").count()).resolves.toBe(5);
    await expect(page.getByTestId("task-overdue").count()).resolves.toBe(1);
    await expect(page.getByTestId("task-priority").count()).resolves.toBe(3);
    expect(await page.getByTestId("task-label").allTextContents()).toEqual(expect.arrayContaining(["home", "money", "health", "errands"]));
    expect(await axeViolations(page)).toEqual([]);
    await page.screenshot({ path: path.join(dir, "web-client.png"), fullPage: true });

    await page.setViewportSize({ width: 390, height: 844 });
    expect(await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth)).toBeLessThanOrEqual(0);
    expect(await axeViolations(page)).toEqual([]);
    await page.screenshot({ path: path.join(dir, "web-client-phone.png"), fullPage: true });
    expect(rig.pageProblems).toEqual([]);
  });
});
