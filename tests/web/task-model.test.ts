import type { Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Db } from "../../src/db/client.js";
import { parseId } from "../../src/lib/ids.js";
import { axeViolations, browserAvailable } from "../helpers/browser.js";
import type { TestUser } from "../helpers/server.js";
import { explainFailures, startWebRig, type WebRig } from "../helpers/web-rig.js";

/**
 * The web client's task model (issue 25, item 6), in Chromium against a real
 * server: due dates entered and shown in the viewer's time zone (Asia/Tokyo
 * here, UTC+9 all year, so the expected instants are plain arithmetic),
 * priority and label chips, the list in due order, overdue said in words,
 * search, filters that survive a reload, the server's field-level errors, and
 * editing that sets and clears the fields.
 */

const ZONE = "Asia/Tokyo";
const DAY_MS = 86_400_000;
const ADD = `mutation Add($input: AddTaskInput!) { addTask(input: $input) { id } }`;
const COMPLETE = `mutation Complete($id: ID!) { completeTask(id: $id) { id } }`;
const UPDATE = `mutation Update($input: UpdateTaskInput!) { updateTask(input: $input) { id } }`;

/** The date in Tokyo `days` from now, as a date input takes it. */
function tokyoDate(days: number): string {
  return new Date(Date.now() + days * DAY_MS + 9 * 3_600_000).toISOString().slice(0, 10);
}

describe.runIf(browserAvailable())("the task model in the web client, in Chromium", () => {
  let rig: WebRig;
  let db: Db;
  let page: Page;
  let owner: TestUser;
  let pageProblems: string[];
  const ids: Record<string, string> = {};

  beforeAll(async () => {
    rig = await startWebRig({ user: "web-tasks" });
    ({ db, page, owner, pageProblems } = rig);
    const zone = await owner.gql(`mutation { updateViewer(input: { timezone: "${ZONE}" }) { timezone } }`);
    expect(zone.errors).toBeUndefined();
    await rig.openApp(page);
  }, 120_000);

  afterAll(() => rig?.close());
  explainFailures(() => rig);

  async function addTask(name: string, input: Record<string, unknown>): Promise<string> {
    const added = await owner.gql<{ addTask: { id: string } }>(ADD, { input: { title: name, ...input } });
    expect(added.errors).toBeUndefined();
    ids[name] = added.data!.addTask.id;
    return ids[name];
  }

  const item = (name: string) => page.locator(`[data-testid="task-item"][data-task-id="${ids[name]}"]`);
  const shownIds = () => page.getByTestId("task-item").evaluateAll((items) => items.map((element) => element.getAttribute("data-task-id")));
  const stored = (name: string) => db.task.findUniqueOrThrow({ where: { id: parseId(ids[name]!, "id", "Task") } });

  /** Waits until the list shows exactly these tasks (in any order). */
  async function waitForList(names: string[]): Promise<void> {
    const wanted = names.map((name) => ids[name]).sort();
    await expect.poll(async () => (await shownIds()).sort(), { timeout: 15_000 }).toEqual(wanted);
  }

  async function fillForm(form: ReturnType<Page["getByTestId"]>, fields: { date?: string; time?: string; priority?: string; labels?: string }) {
    if (fields.date !== undefined) await form.getByTestId("due-date").fill(fields.date);
    if (fields.time !== undefined) await form.getByTestId("due-time").fill(fields.time);
    if (fields.priority !== undefined) await form.getByTestId("priority").selectOption(fields.priority);
    if (fields.labels !== undefined) await form.getByTestId("label-input").pressSequentially(fields.labels);
  }

  it("should add tasks with a due date (and time), a priority and labels through the form, and list them by due date in the viewer's zone", async () => {
    await addTask("Pay rent", { dueAt: `${tokyoDate(1)}T09:00:00+09:00` });
    await addTask("Someday maybe", {});
    const form = page.getByTestId("task-form").first();

    await page.getByTestId("new-task-title").fill("Dentist appointment");
    // " Health " and "health," normalise to one chip; "errands" still being typed is taken on Add.
    await fillForm(form, { date: tokyoDate(3), time: "17:30", priority: "HIGH", labels: " Health \nhealth,errands" });
    expect(await form.getByTestId("label-chip").allTextContents()).toEqual(["Health×"]);
    await page.getByTestId("add-task").click();
    await page.getByTestId("task-item").filter({ hasText: "Dentist appointment" }).waitFor();
    const dentist = await db.task.findFirstOrThrow({ where: { userId: owner.id, title: "Dentist appointment" } });
    ids["Dentist appointment"] = (await page.getByTestId("task-item").filter({ hasText: "Dentist appointment" }).getAttribute("data-task-id"))!;
    expect(dentist.dueAt?.toISOString()).toBe(new Date(`${tokyoDate(3)}T17:30:00+09:00`).toISOString());
    expect({ dueAllDay: dentist.dueAllDay, priority: dentist.priority, labels: dentist.labels }).toEqual({
      dueAllDay: false,
      priority: "HIGH",
      labels: ["Health", "errands"],
    });
    // The form is emptied on the mutation's own answer, which the list (taskChanged) may beat.
    await expect.poll(() => page.getByTestId("new-task-title").inputValue()).toBe("");
    expect(await form.getByTestId("label-chip").count()).toBe(0);

    const shown = item("Dentist appointment");
    expect(await shown.locator("time").getAttribute("datetime")).toBe(dentist.dueAt!.toISOString());
    expect(await shown.getByTestId("task-due").textContent()).toMatch(/^Due .*\b(5:30|17:30)\b/);
    expect(await shown.getByTestId("task-priority").textContent()).toBe("High priority");
    expect(await shown.getByTestId("task-label").allTextContents()).toEqual(["Health", "errands"]);
    expect(await shown.getAttribute("data-overdue")).toBe("false");

    // A date without a time is all day: kept as the day's start in Tokyo, shown as a date.
    await page.getByTestId("new-task-title").fill("Renew passport");
    await fillForm(form, { date: tokyoDate(2) });
    await page.getByTestId("add-task").click();
    await page.getByTestId("task-item").filter({ hasText: "Renew passport" }).waitFor();
    ids["Renew passport"] = (await page.getByTestId("task-item").filter({ hasText: "Renew passport" }).getAttribute("data-task-id"))!;
    const passport = await stored("Renew passport");
    expect({ dueAt: passport.dueAt?.toISOString(), dueAllDay: passport.dueAllDay }).toEqual({
      dueAt: new Date(`${tokyoDate(2)}T00:00:00+09:00`).toISOString(),
      dueAllDay: true,
    });
    expect(await item("Renew passport").locator("time").getAttribute("datetime")).toBe(tokyoDate(2));
    expect(await item("Renew passport").getByTestId("task-due").textContent()).not.toMatch(/\d:\d\d/);

    // Due date ascending by default; a task without one comes last (the server's order).
    await waitForList(["Pay rent", "Renew passport", "Dentist appointment", "Someday maybe"]);
    expect(await shownIds()).toEqual([ids["Pay rent"], ids["Renew passport"], ids["Dentist appointment"], ids["Someday maybe"]]);
    expect(await axeViolations(page)).toEqual([]);
    expect(pageProblems).toEqual([]);
  });

  it("should find a task by search (a word's prefix too), and not find it with a search that does not match", async () => {
    const search = page.getByTestId("task-search");
    await search.fill("dentist");
    await waitForList(["Dentist appointment"]);
    await search.fill("appoint");
    await waitForList(["Dentist appointment"]);
    await search.fill("plumber");
    await waitForList([]);
    await page.getByText("No tasks match these filters.").waitFor();
    expect(new URL(page.url()).searchParams.get("q")).toBe("plumber");
    await search.fill("");
    await waitForList(["Pay rent", "Renew passport", "Dentist appointment", "Someday maybe"]);
    expect(new URL(page.url()).search).toBe("");
  });

  it("should mark overdue tasks in words, and filter to them", async () => {
    await addTask("Return library books", { dueAt: new Date(Date.now() - 2 * 3_600_000).toISOString() });
    await addTask("Water the plants", { dueAt: `${tokyoDate(-1)}T12:00:00+09:00`, dueAllDay: true });
    // An all-day task is not overdue on its own day; a completed one never is.
    await addTask("Call mum", { dueAt: `${tokyoDate(0)}T12:00:00+09:00`, dueAllDay: true });
    await addTask("Old chore", { dueAt: `${tokyoDate(-3)}T10:00:00+09:00` });
    expect((await owner.gql(COMPLETE, { id: ids["Old chore"] })).errors).toBeUndefined();
    // Listed once its completion has landed (it was past due, pending, for a moment).
    await page.locator(`[data-testid="task-item"][data-task-id="${ids["Old chore"]}"][data-completed="true"]`).waitFor();

    for (const name of ["Return library books", "Water the plants"]) {
      expect(await item(name).getAttribute("data-overdue"), name).toBe("true");
      expect(await item(name).getByTestId("task-overdue").textContent(), name).toBe("Overdue");
    }
    for (const name of ["Call mum", "Old chore", "Pay rent"]) {
      expect(await item(name).getAttribute("data-overdue"), name).toBe("false");
      expect(await item(name).getByTestId("task-overdue").count(), name).toBe(0);
    }

    await page.getByTestId("filter-overdue").check();
    await waitForList(["Return library books", "Water the plants"]);
    expect(await axeViolations(page)).toEqual([]);
    await page.getByTestId("filter-overdue").uncheck();
    await item("Call mum").waitFor();
  });

  it("should filter by a label (any case) and a priority, and keep the filters across a reload", async () => {
    await addTask("Buy stamps", { labels: ["Errands"], priority: "LOW" });
    // A label chip in the list filters by it.
    await item("Buy stamps").getByRole("button", { name: "Show tasks labelled Errands" }).click();
    await waitForList(["Dentist appointment", "Buy stamps"]);
    await expect(page.getByTestId("filter-label").inputValue()).resolves.toBe("Errands");
    await page.getByTestId("filter-label").fill("");
    await item("Someday maybe").waitFor();
    await page.getByTestId("filter-label").fill("ERRANDS");
    await waitForList(["Dentist appointment", "Buy stamps"]);
    await page.getByTestId("filter-priority").selectOption("HIGH");
    await waitForList(["Dentist appointment"]);

    await page.reload();
    await page.locator('[data-testid="connection-status"][data-state="connected"]').waitFor();
    await expect(page.getByTestId("filter-label").inputValue()).resolves.toBe("ERRANDS");
    await expect(page.getByTestId("filter-priority").inputValue()).resolves.toBe("HIGH");
    await waitForList(["Dentist appointment"]);
    const query = new URL(page.url()).searchParams;
    expect({ label: query.get("label"), priority: query.get("priority") }).toEqual({ label: "ERRANDS", priority: "HIGH" });

    await page.getByTestId("filter-label").fill("");
    await page.getByTestId("filter-priority").selectOption("");
    await item("Someday maybe").waitFor();
  });

  it("should show the server's error for a label that is too long beside the labels, and keep the task unsaved", async () => {
    const form = page.getByTestId("task-form").first();
    await page.getByTestId("new-task-title").fill("Label too long");
    await fillForm(form, { labels: `${"x".repeat(41)}\n` });
    await page.getByTestId("add-task").click();
    const error = form.locator('[data-testid="field-error"][data-field="labels"]');
    await error.waitFor();
    expect(await error.textContent()).toBe(`“${"x".repeat(41)}” must be at most 40 characters (got 41)`);
    expect(await form.getByTestId("label-chip").getAttribute("data-invalid")).toBe("true");
    expect(await form.getByTestId("label-input").getAttribute("aria-invalid")).toBe("true");
    expect(await db.task.count({ where: { userId: owner.id, title: "Label too long" } })).toBe(0);
    expect(await axeViolations(page)).toEqual([]);

    // Removing the chip at fault lets the task through.
    await form.getByRole("button", { name: `Remove label ${"x".repeat(41)}` }).click();
    await page.getByTestId("add-task").click();
    await page.getByTestId("task-item").filter({ hasText: "Label too long" }).waitFor();
    // The list can show the task (taskChanged) before the mutation's own answer clears the error.
    await form.getByTestId("field-error").waitFor({ state: "detached" });
    expect((await db.task.findFirstOrThrow({ where: { userId: owner.id, title: "Label too long" } })).labels).toEqual([]);
  });

  it("should set and clear the due date, priority and labels when editing a task", async () => {
    const editForm = () => item("Dentist appointment").getByTestId("task-form");
    await item("Dentist appointment").getByRole("button", { name: "Edit Dentist appointment" }).click();
    await expect(editForm().getByTestId("due-date").inputValue()).resolves.toBe(tokyoDate(3));
    await expect(editForm().getByTestId("due-time").inputValue()).resolves.toBe("17:30");
    await fillForm(editForm(), { date: "", time: "", priority: "NONE" });
    await editForm().getByRole("button", { name: "Remove label Health" }).click();
    await editForm().getByTestId("task-save").click();
    await editForm().waitFor({ state: "detached" });
    await expect.poll(async () => (await stored("Dentist appointment")).dueAt).toBeNull();
    const cleared = await stored("Dentist appointment");
    expect({ dueAllDay: cleared.dueAllDay, priority: cleared.priority, labels: cleared.labels }).toEqual({
      dueAllDay: false,
      priority: "NONE",
      labels: ["errands"],
    });
    await item("Dentist appointment").getByTestId("task-due").waitFor({ state: "detached" });

    await item("Dentist appointment").getByRole("button", { name: "Edit Dentist appointment" }).click();
    await fillForm(editForm(), { date: tokyoDate(5), priority: "URGENT", labels: "Work\n" });
    await editForm().getByRole("button", { name: "Remove label errands" }).click();
    await editForm().getByTestId("task-save").click();
    await item("Dentist appointment").getByTestId("task-priority").filter({ hasText: "Urgent priority" }).waitFor();
    const set = await stored("Dentist appointment");
    expect({ dueAt: set.dueAt?.toISOString(), dueAllDay: set.dueAllDay, priority: set.priority, labels: set.labels }).toEqual({
      dueAt: new Date(`${tokyoDate(5)}T00:00:00+09:00`).toISOString(),
      dueAllDay: true,
      priority: "URGENT",
      labels: ["Work"],
    });
    expect(await item("Dentist appointment").getByTestId("task-label").allTextContents()).toEqual(["Work"]);

    // Removing every label clears them.
    await item("Dentist appointment").getByRole("button", { name: "Edit Dentist appointment" }).click();
    await editForm().getByRole("button", { name: "Remove label Work" }).click();
    await editForm().getByTestId("task-save").click();
    // The form closes once the save is answered; only then does the item show its labels again (none).
    await editForm().waitFor({ state: "detached" });
    expect(await item("Dentist appointment").getByTestId("task-priority").textContent()).toBe("Urgent priority");
    // Waited for, not read at once: the form closing and the item showing the answer's labels are not one
    // render (under load, once, a label was still shown just after the form had gone).
    await expect.poll(() => item("Dentist appointment").getByTestId("task-label").count(), { timeout: 15_000 }).toBe(0);
    expect((await stored("Dentist appointment")).labels).toEqual([]);

    // An edit sends only what was changed in the form: a rename made elsewhere while it was open stays.
    await item("Dentist appointment").getByRole("button", { name: "Edit Dentist appointment" }).click();
    const renamed = await owner.gql(UPDATE, { input: { id: ids["Dentist appointment"], title: "Dentist check-up" } });
    expect(renamed.errors).toBeUndefined();
    await editForm().getByRole("textbox", { name: "Title of Dentist check-up" }).waitFor();
    await fillForm(editForm(), { priority: "MEDIUM" });
    await editForm().getByTestId("task-save").click();
    await editForm().waitFor({ state: "detached" });
    const merged = await stored("Dentist appointment");
    expect({ title: merged.title, priority: merged.priority }).toEqual({ title: "Dentist check-up", priority: "MEDIUM" });
    expect(pageProblems).toEqual([]);
  });
});
