import type { Page, Route } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { deferred } from "../chat/support.js";
import { browserAvailable } from "../helpers/browser.js";
import type { TestUser } from "../helpers/server.js";
import { explainFailures, startWebRig, type WebRig } from "../helpers/web-rig.js";

/**
 * The task list never settles on a state older than the newest it was told
 * of: a list read sent before a change and answered after it (held here by
 * the page's router, answered with what the server said before the change)
 * must not leave the change's task as it was. graphcache applies results in
 * the order their operations were sent, so the older read lands under the
 * change's event; this holds that in place should the cache or its setup change.
 */
describe.runIf(browserAvailable())("the task list after a read that crossed a change, in Chromium", () => {
  let rig: WebRig;
  let page: Page;
  let owner: TestUser;

  beforeAll(async () => {
    rig = await startWebRig({ user: "web-fresh" });
    ({ page, owner } = rig);
  }, 120_000);

  afterAll(() => rig?.close());
  explainFailures(() => rig);

  /** Holds the page's next `Tasks` read: it goes to the server at once, and its answer reaches the page on release(). */
  async function holdNextListRead(): Promise<{ sent: Promise<void>; release: () => void }> {
    const released = deferred();
    const sent = deferred();
    let holding = false;
    const handler = async (route: Route) => {
      if (holding || !/Tasks/.test(route.request().url() + (route.request().postData() ?? ""))) return route.fallback();
      holding = true;
      const answer = await route.fetch();
      sent.resolve();
      await released.promise;
      await route.fulfill({ response: answer });
    };
    await page.route("**/graphql*", handler);
    return { sent: sent.promise, release: released.resolve };
  }

  it("should show a task's completion that came while an older read of the list was out", async () => {
    const added = await owner.gql<{ addTask: { id: string } }>(`mutation { addTask(input: { title: "Post the letter" }) { id } }`);
    const id = added.data!.addTask.id;
    const item = page.locator(`[data-testid="task-item"][data-task-id="${id}"]`);
    await item.waitFor();

    // A rename makes the page read the list again; that read is answered as the server saw it then.
    const held = await holdNextListRead();
    await owner.gql(`mutation R($id: ID!) { updateTask(input: { id: $id, title: "Post the letter today" }) { id } }`, { id });
    await held.sent;
    // The completion's event lands while the read is out; its own re-read joins the one in flight.
    await owner.gql(`mutation C($id: ID!) { completeTask(id: $id) { id } }`, { id });
    // The completion's event (and the re-read it asks for) reach the page while the older read is out.
    await new Promise((resolve) => setTimeout(resolve, 1000));
    held.release();
    await expect.poll(() => item.getAttribute("data-completed"), { timeout: 10_000 }).toBe("true");
    expect(rig.pageProblems).toEqual([]);
  });
});
