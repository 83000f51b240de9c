import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { MAX_BULK, MAX_FOUND } from "../../src/chat/task-bulk-tools.js";
import { startFakeCohere, textReply, toolCallReply, type FakeCohere } from "../helpers/fake-cohere.js";
import { newUser, type TestServer } from "../helpers/server.js";
import { addTask, decided, requestsSince, sent, taskTitles, toolResultsSent, turnAfter } from "./approval-support.js";
import { twoInstances } from "./support.js";

/**
 * search_tasks (bounded: the model never gets the whole list) and the bulk
 * tools complete_tasks and delete_tasks: held for approval under the default
 * policy, the card names what they will touch, every change carries the call
 * as its cause, and undoing the turn reverts them all.
 */
describe("search_tasks and the bulk tools", () => {
  let fake: FakeCohere;
  let a: TestServer;
  let b: TestServer;

  beforeAll(async () => {
    fake = await startFakeCohere();
    [a, b] = await twoInstances(fake);
  });
  afterAll(async () => {
    await a?.close();
    await b?.close();
    await fake?.close();
  });

  it(`should list at most ${MAX_FOUND} matches and say how many more matched`, async () => {
    const user = await newUser(a);
    await a.db.task.createMany({ data: Array.from({ length: 40 }, (_, i) => ({ userId: user.id, title: `quarterly report ${i}` })) });
    await a.db.task.create({ data: { userId: user.id, title: "walk the dog" } });
    const from = fake.requests.length;
    fake.enqueue(toolCallReply([{ id: "find_reports", name: "search_tasks", args: { query: "reports", limit: 25 } }]), textReply("Found them."));
    const done = await sent(a, user, { content: "which reports?" });
    expect(done.turn.status).toBe("COMPLETED");
    const result = toolResultsSent(requestsSince(fake, from)[1]!).get("find_reports") as {
      tasks: { title: string }[];
      total_matched: number;
      more_matched: number;
    };
    expect(result.tasks).toHaveLength(MAX_FOUND);
    expect(result.tasks.every((task) => task.title.startsWith("quarterly report"))).toBe(true);
    expect(result).toMatchObject({ total_matched: 40, more_matched: 15 });
  });

  it("should hold complete_tasks by filter for approval, name the matching tasks, complete them with the call as cause, and undo them", async () => {
    const user = await newUser(a);
    await addTask(a, user, "Pay rent");
    await addTask(a, user, "Pay tax");
    await addTask(a, user, "Buy milk");
    fake.enqueue(
      toolCallReply([{ id: "pay_all", name: "complete_tasks", args: { filter: { query: "pay", status: "pending" } } }]),
      textReply("Done."),
    );
    const paused = await sent(a, user, { content: "I paid everything" });
    expect(paused.turn.status).toBe("REQUIRES_ACTION");
    const [call] = paused.turn.toolCalls;
    expect(call!.approval?.status).toBe("PENDING");
    expect(call!.tasks.map((task) => task.title).sort()).toEqual(["Pay rent", "Pay tax"]);
    expect((await a.db.task.findMany({ where: { userId: user.id, completed: true } })).length).toBe(0);

    await decided(a, user, paused.turn.id, [{ toolCallId: "pay_all", approve: true }]);
    const done = await turnAfter(a, user, paused.turn.id);
    expect(done.status).toBe("COMPLETED");
    expect(done.toolCalls[0]).toMatchObject({ error: null, result: { count: 2 } });
    const completed = await a.db.task.findMany({ where: { userId: user.id, completed: true }, orderBy: { title: "asc" } });
    expect(completed.map((task) => task.title)).toEqual(["Pay rent", "Pay tax"]);
    const events = await a.db.taskEvent.findMany({ where: { userId: user.id, kind: "UPDATED" } });
    expect(events).toHaveLength(2);
    for (const event of events) expect(event).toMatchObject({ actor: "ASSISTANT", toolCallId: "pay_all" });

    const undo = await a.request(`mutation($id: ID!) { undoTurn(id: $id) { reverted { kind } } }`, { id: paused.turn.id }, user.token);
    expect(undo.errors).toBeUndefined();
    expect(await a.db.task.count({ where: { userId: user.id, completed: true } })).toBe(0);
  });

  it("should hold delete_tasks by ids, name them, delete all of them once approved, and undo brings them back", async () => {
    const user = await newUser(a);
    const one = await addTask(a, user, "Old note one");
    const two = await addTask(a, user, "Old note two");
    await addTask(a, user, "Keep me");
    fake.enqueue(toolCallReply([{ id: "drop_notes", name: "delete_tasks", args: { task_ids: [one, two] } }]), textReply("Deleted."));
    const paused = await sent(a, user, { content: "drop the old notes" });
    expect(paused.turn.status).toBe("REQUIRES_ACTION");
    expect(paused.turn.toolCalls[0]!.tasks.map((task) => task.title).sort()).toEqual(["Old note one", "Old note two"]);
    expect(await taskTitles(a, user)).toHaveLength(3);
    await decided(a, user, paused.turn.id, [{ toolCallId: "drop_notes", approve: true }]);
    expect((await turnAfter(a, user, paused.turn.id)).toolCalls[0]).toMatchObject({ error: null, result: { count: 2 } });
    expect(await taskTitles(a, user)).toEqual(["Keep me"]);
    const undo = await b.request(`mutation($id: ID!) { undoTurn(id: $id) { reverted { kind } } }`, { id: paused.turn.id }, user.token);
    expect(undo.errors).toBeUndefined();
    expect(await taskTitles(a, user)).toEqual(["Keep me", "Old note one", "Old note two"]);
  });

  it(`should refuse a filter that matches more than ${MAX_BULK} tasks and change nothing`, async () => {
    const user = await newUser(a);
    await a.db.task.createMany({ data: Array.from({ length: MAX_BULK + 1 }, (_, i) => ({ userId: user.id, title: `chore ${i}` })) });
    fake.enqueue(toolCallReply([{ id: "all_chores", name: "complete_tasks", args: { filter: { query: "chore" } } }]), textReply("Too many."));
    const paused = await sent(a, user, { content: "done with chores" });
    expect(paused.turn.status).toBe("REQUIRES_ACTION");
    // The card shows nothing: the call would not run as it stands.
    expect(paused.turn.toolCalls[0]!.tasks).toEqual([]);
    await decided(a, user, paused.turn.id, [{ toolCallId: "all_chores", approve: true }]);
    const done = await turnAfter(a, user, paused.turn.id);
    expect(done.toolCalls[0]!.error).toBe(`The filter matches ${MAX_BULK + 1} tasks; at most ${MAX_BULK} per call. Narrow it, or work in batches.`);
    expect(await a.db.task.count({ where: { userId: user.id, completed: true } })).toBe(0);
  });

  it("should answer a bulk call naming another user's task as not found, at once, and change nothing of either user", async () => {
    const alice = await newUser(a);
    const bob = await newUser(a);
    const hers = await addTask(a, alice, "Alice's task");
    const his = await addTask(a, bob, "Bob's task");
    fake.enqueue(toolCallReply([{ id: "mixed", name: "complete_tasks", args: { task_ids: [his, hers] } }]), textReply("Hm."));
    const done = await sent(a, bob, { content: "complete both" });
    expect(done.turn.status).toBe("COMPLETED");
    expect(done.turn.toolCalls[0]).toMatchObject({ error: "Task not found. List the tasks to get valid ids.", approval: null });
    expect(await a.db.task.count({ where: { userId: { in: [alice.id, bob.id] }, completed: true } })).toBe(0);
  });
});
