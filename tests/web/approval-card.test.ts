import type { Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Db } from "../../src/db/client.js";
import { axeViolations, browserAvailable } from "../helpers/browser.js";
import { textReply, toolCallReply, type FakeCohere } from "../helpers/fake-cohere.js";
import type { TestUser } from "../helpers/server.js";
import { explainFailures, startWebRig, type WebRig } from "../helpers/web-rig.js";
import { toGlobalId } from "../../src/lib/ids.js";
import { DECIDE, requestsSince, toolResultsSent } from "../chat/approval-support.js";

/**
 * The web client's approval card (issue 24), in Chromium against a real
 * server with the fake Cohere: a held call shows what it will do (the task's
 * title), Approve and Reject with an optional reason, and the time left; it
 * comes back after a reload, and changes live when the decision is taken
 * elsewhere.
 */

describe.runIf(browserAvailable())("the approval card, in Chromium", () => {
  let rig: WebRig;
  let fake: FakeCohere;
  let db: Db;
  let page: Page;
  let owner: TestUser;
  let pageProblems: string[];

  beforeAll(async () => {
    rig = await startWebRig({ user: "web-approval" });
    ({ fake, db, page, owner, pageProblems } = rig);
  }, 120_000);

  afterAll(() => rig?.close());
  explainFailures(() => rig);

  async function addTask(title: string): Promise<string> {
    const added = await owner.gql<{ addTask: { id: string } }>(`mutation A($t: String!) { addTask(input: { title: $t }) { id } }`, { t: title });
    return added.data!.addTask.id;
  }

  async function say(text: string): Promise<void> {
    await page.getByTestId("chat-input").fill(text);
    await page.getByTestId("chat-send").click();
  }

  const card = (callId: string) => page.locator(`[data-testid="approval-card"][data-tool-call-id="${callId}"]`);

  it("should show each held call with its task's title, time left, Approve and Reject; keep them across a reload; follow a decision taken elsewhere; send a rejection's reason", async () => {
    const milk = await addTask("Buy milk");
    const receipts = await addTask("Old receipts");
    const from = fake.requests.length;
    fake.enqueue(
      toolCallReply([
        { id: "call_web_milk", name: "delete_task", args: { task_id: milk } },
        { id: "call_web_receipts", name: "delete_task", args: { task_id: receipts } },
      ]),
      textReply("Kept the milk, deleted the receipts."),
    );
    await say("clear out milk and receipts");

    await card("call_web_milk").waitFor();
    expect(await card("call_web_milk").getByTestId("approval-title").textContent()).toBe("Delete “Buy milk”");
    expect(await card("call_web_receipts").getByTestId("approval-title").textContent()).toBe("Delete “Old receipts”");
    // CHAT_APPROVAL_TTL is 15 minutes by default.
    expect(await card("call_web_milk").getByTestId("approval-time-left").textContent()).toMatch(/^1[45]:\d\d left$/);
    expect(await card("call_web_milk").getAttribute("data-status")).toBe("PENDING");
    await expect(card("call_web_milk").getByTestId("approval-approve").isEnabled()).resolves.toBe(true);
    await expect(card("call_web_milk").getByTestId("approval-reject").isEnabled()).resolves.toBe(true);
    expect(await axeViolations(page)).toEqual([]);

    await page.reload();
    await page.locator('[data-testid="connection-status"][data-state="connected"]').waitFor();
    await page
      .getByTestId("conversation-item")
      .filter({ hasText: "clear out milk and receipts" })
      .getByRole("button", { name: "clear out milk and receipts", exact: true })
      .click();
    await card("call_web_milk").waitFor();
    await card("call_web_receipts").waitFor();

    // Decided elsewhere (another client): the card follows at once; the turn still waits for the other.
    const turn = await db.turn.findFirstOrThrow({ where: { userId: owner.id, status: "REQUIRES_ACTION" } });
    const elsewhere = await owner.gql(DECIDE, {
      turnId: toGlobalId("Turn", turn.id),
      decisions: [{ toolCallId: "call_web_receipts", approve: true }],
    });
    expect(elsewhere.errors).toBeUndefined();
    await page.locator('[data-testid="approval-card"][data-tool-call-id="call_web_receipts"][data-status="APPROVED"]').waitFor();
    expect(await card("call_web_receipts").textContent()).toContain("Approved");
    expect(await card("call_web_milk").getAttribute("data-status")).toBe("PENDING");

    await card("call_web_milk").getByTestId("approval-reason").fill("I still need milk");
    await card("call_web_milk").getByTestId("approval-reject").click();

    await page.locator('[data-testid="chat-message"][data-role="assistant"]').filter({ hasText: "Kept the milk, deleted the receipts." }).waitFor();
    await card("call_web_milk").waitFor({ state: "detached" });
    expect((await db.task.findMany({ where: { userId: owner.id } })).map((task) => task.title)).toEqual(["Buy milk"]);
    const results = toolResultsSent(requestsSince(fake, from)[1]!);
    expect(results.get("call_web_milk")).toEqual({ error: "Not run: the user declined this call. Their reason: I still need milk" });
    expect(pageProblems).toEqual([]);
  });

  it("should run the held call when Approve is clicked, and the task leaves the list", async () => {
    const plants = await addTask("Water the plants");
    await page.locator(`[data-testid="task-item"][data-task-id="${plants}"]`).waitFor();
    fake.enqueue(toolCallReply([{ id: "call_web_plants", name: "delete_task", args: { task_id: plants } }]), textReply("Deleted it."));
    await say("delete the plants task");
    await card("call_web_plants").waitFor();

    await card("call_web_plants").getByTestId("approval-approve").click();

    await page.locator(`[data-testid="task-item"][data-task-id="${plants}"]`).waitFor({ state: "detached" });
    await page.locator('[data-testid="chat-message"][data-role="assistant"]').filter({ hasText: "Deleted it." }).waitFor();
    await card("call_web_plants").waitFor({ state: "detached" });
    expect(await db.task.count({ where: { userId: owner.id, title: "Water the plants" } })).toBe(0);
    expect(pageProblems).toEqual([]);
  });
});
