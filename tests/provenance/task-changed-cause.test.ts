import pg from "pg";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { parseId } from "../../src/lib/ids.js";
import { startChatRig, type ChatRig } from "../helpers/chat.js";
import { databaseUrl } from "../helpers/db.js";
import { newUser } from "../helpers/server.js";
import { wsClient, type QueuedSubscription, type TestWsClient } from "../helpers/ws-client.js";
import { addTask, assistantTurn, historyOf, ok, resultOf, TASK_CHANGED, UNDO, UPDATE, type EventView } from "./support.js";

interface ChangeView {
  kind: "CREATED" | "UPDATED" | "DELETED";
  taskId: string;
  task: { id: string; title: string } | null;
  cause: EventView | null;
}

/** taskChanged says who made each change: the recorded event that made the task what the event shows. */
describe("taskChanged's cause", () => {
  let rig: ChatRig;
  let sql: pg.Client;
  const clients: TestWsClient[] = [];

  beforeAll(async () => {
    // About provenance and undo: the assistant's deletes and undo_turn run at once (approval has its own tests, tests/chat/approval*.test.ts).
    rig = await startChatRig({ assistant: { approvalPolicy: "none" } });
    sql = new pg.Client({ connectionString: databaseUrl() });
    await sql.connect();
  });

  afterAll(async () => {
    await Promise.all(clients.map((client) => client.dispose()));
    await sql?.end();
    await rig?.server.close();
    await rig?.fake.close();
  });

  async function subscribe(token: string): Promise<QueuedSubscription<{ taskChanged: ChangeView }>> {
    const client = wsClient(rig.server.wsUrl, token);
    clients.push(client);
    const before = rig.server.app.realtime.establishedCount;
    const sub = client.subscribe<{ taskChanged: ChangeView }>(TASK_CHANGED);
    await vi.waitFor(() => expect(rig.server.app.realtime.establishedCount, "established subscriptions").toBeGreaterThan(before), {
      timeout: 10_000,
      interval: 10,
    });
    return sub;
  }

  async function next(sub: QueuedSubscription<{ taskChanged: ChangeView }>): Promise<ChangeView> {
    const result = await sub.next(10_000);
    if (result.errors || !result.data) throw new Error(JSON.stringify(result));
    return result.data.taskChanged;
  }

  it("should carry the cause of each change: the user, the assistant's call, an undo, and SQL", async () => {
    const user = await newUser(rig.server, "cause");
    const sub = await subscribe(user.token);

    const task = await addTask(user, "Plan trip");
    const created = await next(sub);
    expect(created).toMatchObject({ kind: "CREATED", taskId: task.id, cause: { kind: "CREATED", actor: "USER", taskId: task.id, turn: null } });
    expect(created.cause!.id).toBe((await historyOf(user, task.id))[0]!.id);

    const turn = await assistantTurn(rig, user, [{ id: "call_rename", name: "update_task", args: { task_id: task.id, title: "Plan the trip" } }]);
    expect(await next(sub)).toMatchObject({
      kind: "UPDATED",
      task: { title: "Plan the trip" },
      cause: { kind: "UPDATED", actor: "ASSISTANT", turn: { id: turn.turnId }, toolCallId: "call_rename", after: { title: "Plan the trip" } },
    });

    await ok(user, UNDO, { id: turn.turnId });
    expect(await next(sub)).toMatchObject({
      kind: "UPDATED",
      task: { title: "Plan trip" },
      cause: { actor: "UNDO", turn: { id: turn.turnId }, before: { title: "Plan the trip" }, after: { title: "Plan trip" } },
    });

    await sql.query("DELETE FROM tasks WHERE id = $1", [parseId(task.id, "id", "Task")]);
    expect(await next(sub)).toMatchObject({
      kind: "DELETED",
      task: { id: task.id, title: "Plan trip" },
      cause: { kind: "DELETED", actor: "SYSTEM", after: null, before: { title: "Plan trip" } },
    });
    sub.dispose();
  });

  it("should pair every delivered state with the change that made it, however fast the changes come", async () => {
    const user = await newUser(rig.server, "cause-burst");
    const task = await addTask(user, "v0");
    const sub = await subscribe(user.token);
    const id = parseId(task.id, "id", "Task");
    // Committed faster than the feed re-reads: it may collapse versions, never mismatch them.
    await Promise.all([
      (async () => {
        for (let version = 1; version <= 15; version += 1) await sql.query("UPDATE tasks SET title = $2 WHERE id = $1", [id, `v${version}`]);
      })(),
      (async () => {
        for (let version = 16; version <= 30; version += 1) await ok(user, UPDATE, { input: { id: task.id, title: `w${version}` } });
      })(),
    ]);
    const last = (await rig.server.db.task.findUniqueOrThrow({ where: { id } })).title;
    const seen: ChangeView[] = [];
    while (seen.at(-1)?.task?.title !== last) seen.push(await next(sub));
    for (const change of seen) {
      expect(change.cause?.after?.title, JSON.stringify(change)).toBe(change.task?.title);
      expect(change.cause?.actor).toBe(change.task?.title.startsWith("v") ? "SYSTEM" : "USER");
    }
    sub.dispose();
  });

  it("should carry an assistant's creation and an undo's restore as CREATED with their causes", async () => {
    const user = await newUser(rig.server, "cause-restore");
    const sub = await subscribe(user.token);
    const turn = await assistantTurn(rig, user, [{ id: "call_add_cause", name: "add_task", args: { title: "Pick up parcel" } }]);
    const added = resultOf(turn, "add_task");
    expect(await next(sub)).toMatchObject({
      kind: "CREATED",
      cause: { actor: "ASSISTANT", toolCallId: "call_add_cause", turn: { id: turn.turnId } },
    });
    const deleting = await assistantTurn(rig, user, [{ name: "delete_task", args: { task_id: added.id } }], turn.conversationId);
    expect(await next(sub)).toMatchObject({ kind: "DELETED", cause: { kind: "DELETED", actor: "ASSISTANT", turn: { id: deleting.turnId } } });
    await ok(user, UNDO, { id: deleting.turnId });
    expect(await next(sub)).toMatchObject({
      kind: "CREATED",
      taskId: added.id,
      task: { title: "Pick up parcel" },
      cause: { kind: "CREATED", actor: "UNDO", turn: { id: deleting.turnId } },
    });
    sub.dispose();
  });
});
