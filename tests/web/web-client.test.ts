import type { Browser, BrowserContext, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Db } from "../../src/db/client.js";
import { toGlobalId } from "../../src/lib/ids.js";
import { ensureWebBuild, WEB_DIST_DIR } from "../../src/server/web-ui/build.js";
import { axeViolations, browserAvailable, launchChromium, watchedPage } from "../helpers/browser.js";
import { cohereAssistant } from "../helpers/chat.js";
import { newUserId, testDb } from "../helpers/db.js";
import { errorReply, startFakeCohere, textReply, toolCallReply, wordChunks, type FakeCohere } from "../helpers/fake-cohere.js";
import { startTestServer, type TestServer, type TestUser } from "../helpers/server.js";
import { tokenFor } from "../helpers/tokens.js";
import { deferred } from "../chat/support.js";
import { appendVia, newConversation } from "../realtime/support.js";

const BUY_MILK_REPLY = "Done: I added buy milk to your tasks, so you will not forget it on the way home tonight. Anything else?";
const LONG_STORY = "Once upon a time there was a list of tasks that grew and grew until nobody could see the end of it any more.";

/** What the page shows for one chat message. */
interface ShownMessage {
  id: string;
  seq: number;
  role: string;
  status: string;
  text: string;
}

async function shownMessages(page: Page): Promise<ShownMessage[]> {
  return page.$$eval('[data-testid="chat-message"]', (items) =>
    items.map((item) => {
      const element = item as HTMLElement;
      return {
        id: element.dataset.messageId ?? "",
        seq: Number(element.dataset.seq),
        role: element.dataset.role ?? "",
        status: element.dataset.status ?? "",
        text: element.querySelector(".content")?.textContent ?? "",
      };
    }),
  );
}

async function openConversation(page: Page, title: string): Promise<void> {
  await page.getByTestId("conversation-item").filter({ hasText: title }).getByRole("button", { name: title, exact: true }).click();
}

describe.runIf(browserAvailable())("the web client, in Chromium against a real server", () => {
  let fake: FakeCohere;
  let db: Db;
  let server: TestServer;
  /** Another instance on the same database: writes while the page's server is down go through it. */
  let other: TestServer;
  let browser: Browser;
  let context: BrowserContext;
  let page: Page;
  let owner: TestUser;
  const gates: (() => void)[] = [];
  /** Problems the page reported: uncaught exceptions and CSP violations (console errors are checked where no outage is expected). */
  const pageProblems: string[] = [];
  const consoleErrors: string[] = [];

  const startServer = (port?: number) =>
    startTestServer({
      db,
      port,
      assistant: cohereAssistant(fake),
      // The dev token is the owner's: the page gets it only as a same-origin loopback request.
      webUi: { distDir: WEB_DIST_DIR, devToken: owner.token },
    });

  beforeAll(async () => {
    await ensureWebBuild();
    fake = await startFakeCohere();
    db = testDb();
    const id = newUserId("web-owner");
    const token = await tokenFor(id);
    owner = { id, token, gql: (query, variables) => server.request(query, variables, token) };
    server = await startServer();
    other = await startTestServer({ db, assistant: cohereAssistant(fake) });
    browser = await launchChromium();
    ({ context, page } = await watchedPage(browser, pageProblems, consoleErrors));
  }, 120_000);

  afterAll(async () => {
    for (const open of gates) open();
    await browser?.close();
    await server?.close();
    await other?.close();
    await fake?.close();
    await db?.$disconnect();
  });

  it("should load with the dev token, connect its WebSocket and pass axe with no serious violation", async () => {
    const response = await page.goto(server.baseUrl);
    expect(response?.status()).toBe(200);
    expect(response?.headers()["cache-control"]).toBe("no-store");
    expect(response?.headers()["content-security-policy"]).toContain("script-src 'self'");
    expect(response?.headers()["x-frame-options"]).toBe("DENY");
    await page.locator('[data-testid="connection-status"][data-state="connected"]').waitFor();
    await page.getByText(`Signed in as ${owner.id} (dev token)`).waitFor();
    await page.getByTestId("task-list").waitFor({ state: "attached" });
    await page.getByTestId("token-input").waitFor();

    // Hashed assets are cached for a year, under the same pipeline's headers.
    const script = await page.locator("script[src^='/assets/']").getAttribute("src");
    const asset = await fetch(new URL(script!, server.baseUrl));
    expect(asset.headers.get("cache-control")).toBe("public, max-age=31536000, immutable");
    expect(asset.headers.get("x-request-id")).toBeTruthy();

    expect(await axeViolations(page)).toEqual([]);
    expect(pageProblems).toEqual([]);
    expect(consoleErrors).toEqual([]);
  });

  it("should add a task from the UI, then complete, rename and delete it", async () => {
    await page.getByTestId("new-task-title").fill("Water the plants");
    await page.getByTestId("add-task").click();
    const item = page.getByTestId("task-item").filter({ hasText: "Water the plants" });
    await item.waitFor();
    const stored = await db.task.findFirstOrThrow({ where: { userId: owner.id, title: "Water the plants" } });
    expect(await item.getAttribute("data-task-id")).toBe(toGlobalId("Task", stored.id));
    expect(await item.getAttribute("data-completed")).toBe("false");
    // taskChanged can put the task in the list before addTask's own answer clears the form.
    await expect.poll(() => page.getByTestId("new-task-title").inputValue()).toBe("");

    await item.getByTestId("task-toggle").click();
    await page.locator(`[data-testid="task-item"][data-task-id="${toGlobalId("Task", stored.id)}"][data-completed="true"]`).waitFor();
    expect((await db.task.findUniqueOrThrow({ where: { id: stored.id } })).completed).toBe(true);

    await item.getByRole("button", { name: "Edit Water the plants" }).click();
    const title = page.getByRole("textbox", { name: "Title of Water the plants" });
    await title.fill("Water the ferns");
    await title.press("Enter");
    const renamed = page.getByTestId("task-item").filter({ hasText: "Water the ferns" });
    await renamed.waitFor();
    expect((await db.task.findUniqueOrThrow({ where: { id: stored.id } })).title).toBe("Water the ferns");

    await renamed.getByTestId("task-delete").click();
    await renamed.waitFor({ state: "detached" });
    expect(await db.task.findUnique({ where: { id: stored.id } })).toBeNull();
  });

  it("should show a task added through GraphQL by another client without a reload", async () => {
    const added = await owner.gql<{ addTask: { id: string } }>(`mutation { addTask(input: { title: "Call the plumber" }) { id } }`);
    expect(added.errors).toBeUndefined();
    await page.locator(`[data-testid="task-item"][data-task-id="${added.data!.addTask.id}"]`).waitFor();

    // The filters re-read the server's lists.
    await page.getByRole("button", { name: "Completed", exact: true }).click();
    await page.locator(`[data-testid="task-item"][data-task-id="${added.data!.addTask.id}"]`).waitFor({ state: "detached" });
    await page.getByRole("button", { name: "Pending", exact: true }).click();
    await page.locator(`[data-testid="task-item"][data-task-id="${added.data!.addTask.id}"]`).waitFor();
    await page.getByRole("button", { name: "All", exact: true }).click();
  });

  it('should stream the reply to "add buy milk" over several frames, with a tool chip, while the task appears', async () => {
    const chunks = wordChunks(BUY_MILK_REPLY);
    const taskShown = page.getByTestId("task-item").filter({ hasText: "buy milk" }).waitFor({ timeout: 20_000 });
    fake.enqueue(
      toolCallReply([{ name: "add_task", args: { title: "buy milk" } }], "I will add it."),
      // The answer pauses mid-way until the task is in the pane: it appears while the reply streams.
      textReply(BUY_MILK_REPLY, { chunks, eventDelayMs: 40, gate: { afterDeltas: 4, until: taskShown } }),
    );
    // Every animation frame, what each assistant message shows.
    await page.evaluate(() => {
      const frames: { id: string; status: string; text: string }[] = [];
      (window as unknown as { frames_: typeof frames }).frames_ = frames;
      const tick = () => {
        for (const element of document.querySelectorAll<HTMLElement>('[data-testid="chat-message"][data-role="assistant"]')) {
          const text = element.querySelector(".content")?.textContent ?? "";
          const id = element.dataset.messageId ?? "";
          const status = element.dataset.status ?? "";
          const last = frames.findLast((f) => f.id === id);
          if (!last || last.text !== text || last.status !== status) frames.push({ id, status, text });
        }
        requestAnimationFrame(tick);
      };
      requestAnimationFrame(tick);
    });

    const input = page.getByTestId("chat-input");
    await input.fill("add buy milk");
    await input.press("Enter");
    await taskShown;
    const answer = page.locator('[data-testid="chat-message"][data-role="assistant"][data-status="COMPLETE"]').filter({ hasText: "Anything else?" });
    await answer.waitFor({ timeout: 20_000 });
    expect(await answer.locator(".content").textContent()).toBe(BUY_MILK_REPLY);

    const answerId = await answer.getAttribute("data-message-id");
    const frames = (await page.evaluate(() => (window as unknown as { frames_: { id: string; status: string; text: string }[] }).frames_)).filter(
      (f) => f.id === answerId,
    );
    const streaming = frames.filter((f) => f.status === "STREAMING");
    // It grew: at least three different texts while STREAMING, each extending the one before.
    expect(new Set(streaming.map((f) => f.text)).size).toBeGreaterThanOrEqual(3);
    for (let i = 1; i < frames.length; i += 1) expect(frames[i]!.text.startsWith(frames[i - 1]!.text)).toBe(true);
    expect(frames.at(-1)).toMatchObject({ status: "COMPLETE", text: BUY_MILK_REPLY });

    // The tool call as a chip: name and arguments, the result on click.
    const chip = page.getByTestId("tool-chip").filter({ hasText: "add_task" });
    await chip.waitFor();
    expect(await chip.textContent()).toContain('title: "buy milk"');
    await chip.getByRole("button").click();
    expect(await chip.getByRole("button").getAttribute("aria-expanded")).toBe("true");
    expect(await chip.locator(".tool-details").textContent()).toContain('"title": "buy milk"');

    // The user's message, the tool step, the tool result and the answer: once each, in order.
    const shown = await shownMessages(page);
    expect(shown.map((m) => m.role)).toEqual(["user", "assistant", "tool", "assistant"]);
    expect(new Set(shown.map((m) => m.id)).size).toBe(shown.length);
    await page.getByTestId("conversation-item").filter({ hasText: "add buy milk" }).waitFor();
    await page.getByTestId("chat-stop").waitFor({ state: "detached" });
  });

  it("should keep Shift+Enter as a new line, and Stop a streaming reply, leaving the partial text CANCELLED", async () => {
    const chunks = wordChunks(LONG_STORY);
    const gate = deferred();
    gates.push(gate.resolve);
    fake.enqueue(textReply(LONG_STORY, { chunks, gate: { afterDeltas: 6, until: gate.promise } }));
    const prefix = chunks.slice(0, 6).join("");

    const input = page.getByTestId("chat-input");
    await input.fill("tell me");
    await input.press("Shift+Enter");
    await input.pressSequentially("a long story");
    expect(await input.inputValue()).toBe("tell me\na long story");
    expect((await shownMessages(page)).length).toBe(4);
    await input.press("Enter");

    const partial = page.locator('[data-testid="chat-message"][data-role="assistant"][data-status="STREAMING"]');
    await partial.waitFor();
    await page.waitForFunction((text) => {
      const items = document.querySelectorAll('[data-testid="chat-message"][data-status="STREAMING"] .content');
      return items[items.length - 1]?.textContent === text;
    }, prefix);
    await page.getByTestId("chat-stop").click();

    const cancelled = page.locator('[data-testid="chat-message"][data-role="assistant"][data-status="CANCELLED"]');
    await cancelled.waitFor();
    expect(await cancelled.locator(".content").textContent()).toBe(prefix);
    await page.getByTestId("chat-stop").waitFor({ state: "detached" });
    const stored = await db.message.findFirstOrThrow({ where: { userId: owner.id, role: "assistant", status: "CANCELLED" } });
    expect(stored.content).toBe(prefix);
    const user = (await shownMessages(page)).filter((m) => m.role === "user").at(-1);
    expect(user?.text).toBe("tell me\na long story");
  });

  it("should offer Retry when the assistant is unavailable, and retry with the same clientMessageId (one message stored)", async () => {
    await page.getByTestId("new-conversation").click();
    await page.getByTestId("conversation-item").filter({ hasText: "Untitled conversation" }).first().waitFor();
    // The model fails every call (after the SDK's retries): the turn ends FAILED with ASSISTANT_UNAVAILABLE.
    fake.setFallback(errorReply(503, "overloaded"));
    try {
      await page.getByTestId("chat-input").fill("plan my week");
      await page.getByTestId("chat-input").press("Enter");
      await page.getByText("The assistant is unavailable right now (ASSISTANT_UNAVAILABLE)").waitFor();
    } finally {
      fake.setFallback(undefined);
    }
    fake.enqueue(textReply("Here is a plan for your week."));
    await page.getByRole("button", { name: "Retry" }).click();
    await page.locator('[data-testid="chat-message"][data-status="COMPLETE"]').filter({ hasText: "Here is a plan for your week." }).waitFor();

    const stored = await db.message.findMany({ where: { userId: owner.id, content: "plan my week" } });
    expect(stored).toHaveLength(1);
    expect(stored[0]!.clientMessageId).toMatch(/^[0-9a-f-]{36}$/);
    const shown = await shownMessages(page);
    expect(shown.filter((m) => m.text === "plan my week")).toHaveLength(1);
    expect(await page.getByRole("button", { name: "Retry" }).count()).toBe(0);
  });

  it("should say when a RATE_LIMITED sender may send again, storing nothing", async () => {
    const id = newUserId("web-limited");
    const token = await tokenFor(id);
    const limited = await startTestServer({
      db,
      assistant: cohereAssistant(fake, { rateLimit: { perMinute: 1, burst: 1 } }),
      webUi: { distDir: WEB_DIST_DIR, devToken: token },
    });
    const limitedPage = await context.newPage();
    try {
      await limitedPage.goto(limited.baseUrl);
      await limitedPage.locator('[data-testid="connection-status"][data-state="connected"]').waitFor();
      fake.enqueue(textReply("Noted."));
      await limitedPage.getByTestId("chat-input").fill("first");
      await limitedPage.getByTestId("chat-input").press("Enter");
      await limitedPage.locator('[data-testid="chat-message"][data-status="COMPLETE"]').filter({ hasText: "Noted." }).waitFor();

      await limitedPage.getByTestId("chat-input").fill("second");
      await limitedPage.getByTestId("chat-input").press("Enter");
      const notice = limitedPage.getByText(/Too many messages: you can send again in \d+ s\./);
      await notice.waitFor();
      const seconds = Number(/in (\d+) s/.exec((await notice.textContent()) ?? "")?.[1]);
      expect(seconds).toBeGreaterThan(0);
      expect(seconds).toBeLessThanOrEqual(60);
      expect(await limitedPage.getByRole("button", { name: "Send again" }).isDisabled()).toBe(true);
      // The draft is kept for later; nothing was stored.
      expect(await limitedPage.getByTestId("chat-input").inputValue()).toBe("second");
      expect(await db.message.count({ where: { userId: id, role: "user" } })).toBe(1);
    } finally {
      await limitedPage.close();
      await limited.close();
    }
  });

  it("should page back through a long conversation as it is scrolled up", async () => {
    const conversation = await newConversation(db, owner.id, "Long history");
    const contents = Array.from({ length: 45 }, (_, i) => `note ${i + 1}`);
    await appendVia(db, owner.id, conversation.id, contents);
    await page.reload();
    await page.locator('[data-testid="connection-status"][data-state="connected"]').waitFor();
    await openConversation(page, "Long history");
    await page.waitForFunction(() => document.querySelectorAll('[data-testid="chat-message"]').length === 30);
    expect((await shownMessages(page))[0]?.text).toBe("note 16");

    await page.getByRole("list", { name: "Messages" }).evaluate((list) => (list.scrollTop = 0));
    await page.waitForFunction(() => document.querySelectorAll('[data-testid="chat-message"]').length === 45);
    const shown = await shownMessages(page);
    expect(shown.map((m) => m.text)).toEqual(contents);
    expect(shown.map((m) => m.seq)).toEqual(contents.map((_, i) => i + 1));
  });

  it("should show reconnecting while its server restarts, then connected, with no message missing or doubled", async () => {
    await openConversation(page, "add buy milk");
    await page.waitForFunction(() => document.querySelectorAll('[data-testid="chat-message"]').length >= 6);
    const conversation = await db.conversation.findFirstOrThrow({ where: { userId: owner.id, title: "add buy milk" } });
    const port = Number(new URL(server.baseUrl).port);

    await server.close();
    await page.locator('[data-testid="connection-status"][data-state="reconnecting"]').waitFor();

    // While the page's server is down, a turn runs to its end on another instance.
    fake.enqueue(textReply("You have three tasks left."));
    const sent = await other.request<{ sendMessage: { reply: { content: string } } }>(
      `mutation S($input: SendMessageInput!) { sendMessage(input: $input) { reply { content } } }`,
      { input: { conversationId: toGlobalId("Conversation", conversation.id), content: "what is left?" } },
      owner.token,
    );
    expect(sent.errors).toBeUndefined();

    server = await startServer(port);
    await page.locator('[data-testid="connection-status"][data-state="connected"]').waitFor({ timeout: 20_000 });
    await page.locator('[data-testid="chat-message"]').filter({ hasText: "You have three tasks left." }).waitFor();

    // Once more, live, after the reconnect.
    fake.enqueue(textReply("Nothing else is due today."));
    await page.getByTestId("chat-input").fill("anything due?");
    await page.getByTestId("chat-input").press("Enter");
    await page.locator('[data-testid="chat-message"][data-status="COMPLETE"]').filter({ hasText: "Nothing else is due today." }).waitFor();

    const stored = await db.message.findMany({ where: { conversationId: conversation.id }, orderBy: { seq: "asc" } });
    const shown = await shownMessages(page);
    expect(shown.map((m) => m.id)).toEqual(stored.map((m) => toGlobalId("Message", m.id)));
    expect(shown.map((m) => m.seq)).toEqual(stored.map((m) => m.seq));
    expect(shown.filter((m) => m.role !== "tool").map((m) => m.text)).toEqual(stored.filter((m) => m.role !== "tool").map((m) => m.content));
    expect(pageProblems).toEqual([]);
  });

  it("should show a conversation afresh after switching away and back: what came meanwhile once, live again, older pages on demand again", async () => {
    await openConversation(page, "add buy milk");
    await page.locator('[data-testid="chat-message"]').filter({ hasText: "Nothing else is due today." }).waitFor();
    const conversation = await db.conversation.findFirstOrThrow({ where: { userId: owner.id, title: "add buy milk" } });

    // Away: the long conversation shows its newest page, then all of it once scrolled up.
    await openConversation(page, "Long history");
    await page.waitForFunction(() => document.querySelectorAll('[data-testid="chat-message"]').length === 30);
    await page.getByRole("list", { name: "Messages" }).evaluate((list) => (list.scrollTop = 0));
    await page.waitForFunction(() => document.querySelectorAll('[data-testid="chat-message"]').length === 45);
    await appendVia(db, owner.id, conversation.id, ["written while away"]);

    await openConversation(page, "add buy milk");
    await page.locator('[data-testid="chat-message"]').filter({ hasText: "written while away" }).waitFor();
    await appendVia(db, owner.id, conversation.id, ["written after coming back"]);
    await page.locator('[data-testid="chat-message"]').filter({ hasText: "written after coming back" }).waitFor();
    const stored = await db.message.findMany({ where: { conversationId: conversation.id }, orderBy: { seq: "asc" } });
    expect((await shownMessages(page)).map((m) => m.id)).toEqual(stored.map((m) => toGlobalId("Message", m.id)));

    // Back again: the newest page as the server has it, the older ones again on demand.
    await openConversation(page, "Long history");
    await page.waitForFunction(() => document.querySelectorAll('[data-testid="chat-message"]').length === 30);
    expect((await shownMessages(page))[0]?.text).toBe("note 16");
    expect(pageProblems).toEqual([]);
  });

  it("should show another user, signed in with token-input, none of the first user's data", async () => {
    const strangerId = newUserId("web-stranger");
    const strangerToken = await tokenFor(strangerId);
    const added = await server.request<{ addTask: { id: string } }>(
      `mutation { addTask(input: { title: "Stranger's own task" }) { id } }`,
      {},
      strangerToken,
    );
    await owner.gql(`mutation { addTask(input: { title: "Owner's secret errand" }) { id } }`);
    const ownerTasks = await db.task.findMany({ where: { userId: owner.id } });
    const ownerConversations = await db.conversation.findMany({ where: { userId: owner.id } });
    expect(ownerTasks.length).toBeGreaterThan(0);

    const second = await browser.newContext();
    second.setDefaultTimeout(15_000);
    try {
      const strangerPage = await second.newPage();
      await strangerPage.goto(server.baseUrl);
      // A token the server refuses: the page asks for another.
      await strangerPage.getByTestId("token-input").fill("not-a-jwt");
      await strangerPage.getByTestId("token-save").click();
      await strangerPage.getByText("The server refused this token").waitFor();

      await strangerPage.getByTestId("token-input").fill(strangerToken);
      await strangerPage.getByTestId("token-save").click();
      await strangerPage.getByText(`Signed in as ${strangerId}.`).waitFor();
      await strangerPage.locator('[data-testid="connection-status"][data-state="connected"]').waitFor();
      await strangerPage.locator(`[data-testid="task-item"][data-task-id="${added.data!.addTask.id}"]`).waitFor();
      // The token lives in this tab's sessionStorage: a reload keeps the user.
      await strangerPage.reload();
      await strangerPage.locator(`[data-testid="task-item"][data-task-id="${added.data!.addTask.id}"]`).waitFor();

      const ids = await strangerPage.$$eval('[data-testid="task-item"]', (items) => items.map((item) => (item as HTMLElement).dataset.taskId));
      expect(ids).toEqual([added.data!.addTask.id]);
      expect(await strangerPage.getByTestId("conversation-item").count()).toBe(0);
      const text = await strangerPage.locator("body").innerText();
      for (const task of ownerTasks) expect(text).not.toContain(task.title);
      for (const conversation of ownerConversations) if (conversation.title) expect(text).not.toContain(conversation.title);
    } finally {
      await second.close();
    }
  });

  // The README's screenshots are tests/web/screenshots.test.ts's.
  it("should stay readable at phone width (no sideways scrolling)", async () => {
    await openConversation(page, "add buy milk");
    await page.locator('[data-testid="chat-message"]').filter({ hasText: "Nothing else is due today." }).waitFor();

    await page.setViewportSize({ width: 390, height: 844 });
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    expect(overflow).toBeLessThanOrEqual(0);
    for (const hook of ["chat-input", "chat-send", "task-list", "new-task-title", "connection-status"]) {
      const box = await page.getByTestId(hook).boundingBox();
      expect(box, hook).not.toBeNull();
      expect(box!.x + box!.width, hook).toBeLessThanOrEqual(390);
    }
    expect(await axeViolations(page)).toEqual([]);
    await page.setViewportSize({ width: 1280, height: 800 });
  });
});
