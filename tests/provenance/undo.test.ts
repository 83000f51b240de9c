import { setTimeout as sleep } from "node:timers/promises";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { parseId, toGlobalId } from "../../src/lib/ids.js";
import { deferred } from "../chat/support.js";
import { startChatRig, type ChatRig } from "../helpers/chat.js";
import { databaseUrl } from "../helpers/db.js";
import { textReply, toolCallReply } from "../helpers/fake-cohere.js";
import { newUser, type TestUser } from "../helpers/server.js";
import { snapshot } from "../security/isolation-support.js";
import {
  ADD,
  addTask,
  assistantTurn,
  COMPLETE,
  errorOf,
  historyOf,
  ok,
  resultOf,
  SEND,
  TASK,
  MESSAGE_TURN,
  turnEvents,
  UNDO,
  undoCheckOf,
  UPDATE,
  type TaskView,
  type UndoView,
} from "./support.js";

/** undoTurn: a turn's task changes taken back whole, or refused with nothing changed. */
describe("undoTurn", () => {
  let rig: ChatRig;
  let sql: pg.Client;

  beforeAll(async () => {
    // About provenance and undo: the assistant's deletes and undo_turn run at once (approval has its own tests, tests/chat/approval*.test.ts).
    rig = await startChatRig({ assistant: { approvalPolicy: "none" } });
    sql = new pg.Client({ connectionString: databaseUrl() });
    await sql.connect();
  });

  afterAll(async () => {
    await sql?.end();
    await rig?.server.close();
    await rig?.fake.close();
  });

  const undo = async (user: TestUser, turnId: string) => (await ok<{ undoTurn: UndoView }>(user, UNDO, { id: turnId })).undoTurn;
  const row = (taskId: string) => rig.server.db.task.findUnique({ where: { id: parseId(taskId, "id", "Task") } });

  it("should undo a two-tool turn in reverse order: the created task deleted, the updated one set back, recorded as UNDO of that turn", async () => {
    const user = await newUser(rig.server, "undo-two");
    const mom = await addTask(user, "Call mom");
    const turn = await assistantTurn(rig, user, [
      { id: "call_add", name: "add_task", args: { title: "Buy milk" } },
      { id: "call_update", name: "update_task", args: { task_id: mom.id, title: "Call dad", description: "Sunday" } },
    ]);
    const milk = resultOf(turn, "add_task");

    const undone = await undo(user, turn.turnId);
    expect(undone.turn).toEqual({ id: turn.turnId, undoneAt: expect.any(String) });
    // Newest of the turn's changes first: the update, then the creation.
    expect(undone.reverted.map((event) => [event.kind, event.taskId, event.actor, event.turn?.id, event.undoingTurn, event.toolCallId])).toEqual([
      ["UPDATED", mom.id, "UNDO", turn.turnId, null, null],
      ["DELETED", milk.id, "UNDO", turn.turnId, null, null],
    ]);
    expect(undone.reverted[0]!.after).toMatchObject({ title: "Call mom", description: null });
    expect(undone.tasks).toEqual([{ ...mom, title: "Call mom", description: null }]);
    expect(await row(milk.id)).toBeNull();
    expect(await row(mom.id)).toMatchObject({ title: "Call mom", description: null, completed: false });

    // The turn's own record is unchanged; the task's history tells the whole story.
    const events = await turnEvents(user, turn.turnId);
    expect(events.undoneAt).toBe(undone.turn.undoneAt);
    expect(events.taskEvents.map((event) => [event.actor, event.toolCallId])).toEqual([
      ["ASSISTANT", "call_add"],
      ["ASSISTANT", "call_update"],
    ]);
    expect((await historyOf(user, mom.id)).map((event) => event.actor)).toEqual(["UNDO", "ASSISTANT", "USER"]);
  });

  it("should set back the scheduling fields an update and a recurring completion changed, and bring them back with a deleted task", async () => {
    const user = await newUser(rig.server, "undo-fields");
    const added = await ok<{ addTask: { id: string } }>(user, ADD, {
      input: { title: "Stand-up", dueAt: "2026-06-01T09:00:00Z", priority: "LOW", labels: ["work"], recurrence: "FREQ=DAILY;COUNT=5" },
    });
    const id = added.addTask.id;
    const fields = async () => {
      const task = await row(id);
      return (
        task && {
          dueAt: task.dueAt,
          dueAllDay: task.dueAllDay,
          priority: task.priority,
          labels: task.labels,
          completedAt: task.completedAt,
          recurrence: task.recurrence,
        }
      );
    };
    const before = await fields();
    const turn = await assistantTurn(rig, user, [
      {
        id: "call_fields",
        name: "update_task",
        args: { task_id: id, due: "2026-06-03", priority: "urgent", labels: ["home", "later"], recurrence: "FREQ=WEEKLY" },
      },
      { id: "call_done", name: "complete_task", args: { task_id: id } },
    ]);
    const changed = await fields();
    expect(changed).toMatchObject({ dueAllDay: true, priority: "URGENT", labels: ["home", "later"], recurrence: "FREQ=WEEKLY" });
    expect(changed?.dueAt?.toISOString()).toBe("2026-06-10T00:00:00.000Z");
    expect(changed?.completedAt).not.toBeNull();

    await undo(user, turn.turnId);
    expect(await fields()).toEqual(before);

    const gone = await assistantTurn(rig, user, [{ name: "delete_task", args: { task_id: id } }]);
    await undo(user, gone.turnId);
    expect(await fields()).toEqual(before);
  });

  it("should bring a deleted task back with the same id, title, description, state and creation time", async () => {
    const user = await newUser(rig.server, "undo-delete");
    const task = await addTask(user, "File taxes", "before April");
    await ok(user, COMPLETE, { id: task.id });
    const turn = await assistantTurn(rig, user, [{ name: "delete_task", args: { task_id: task.id } }]);
    expect(await row(task.id)).toBeNull();

    const undone = await undo(user, turn.turnId);
    const back = { ...task, completed: true };
    expect(undone.tasks).toEqual([back]);
    expect(undone.reverted.map((event) => [event.kind, event.actor])).toEqual([["CREATED", "UNDO"]]);
    expect((await ok<{ task: TaskView }>(user, TASK, { id: task.id })).task).toEqual(back);
    // No tombstone left to tell a catching-up subscriber that it is gone.
    expect(await rig.server.db.deletedTask.findUnique({ where: { id: parseId(task.id, "id", "Task") } })).toBeNull();
  });

  it("should refuse with CONFLICT naming the task, and leave every row as it was, when a task of the turn changed since", async () => {
    const user = await newUser(rig.server, "undo-conflict");
    const plants = await addTask(user, "Water plants");
    const turn = await assistantTurn(rig, user, [
      { name: "add_task", args: { title: "Buy soil" } },
      { name: "update_task", args: { task_id: plants.id, title: "Water the plants" } },
    ]);
    const soil = resultOf(turn, "add_task");

    for (const [label, change] of [
      ["a GraphQL update", () => ok(user, UPDATE, { input: { id: plants.id, description: "the big ones" } })],
      ["an update from psql", () => sql.query("UPDATE tasks SET completed = true WHERE id = $1", [parseId(soil.id, "id", "Task")])],
    ] as const) {
      await change();
      const before = await snapshot(rig.server.db, user.id);
      const error = errorOf(await user.gql(UNDO, { id: turn.turnId }));
      expect(error.code, label).toBe("CONFLICT");
      expect(error.message).toMatch(/nothing was changed/);
      const expected = label === "a GraphQL update" ? [plants.id] : [soil.id, plants.id].sort();
      expect([...error.extensions.taskIds].sort(), label).toEqual(expected);
      expect(await snapshot(rig.server.db, user.id), label).toEqual(before);
    }
    expect((await turnEvents(user, turn.turnId)).undoneAt).toBeNull();
  });

  it("should refuse a second undo with ALREADY_UNDONE and change nothing", async () => {
    const user = await newUser(rig.server, "undo-twice");
    const turn = await assistantTurn(rig, user, [{ name: "add_task", args: { title: "Once" } }]);
    await undo(user, turn.turnId);
    const before = await snapshot(rig.server.db, user.id);
    const error = errorOf(await user.gql(UNDO, { id: turn.turnId }));
    expect(error).toMatchObject({ code: "ALREADY_UNDONE", message: "The turn was already undone" });
    expect(await snapshot(rig.server.db, user.id)).toEqual(before);
  });

  it("should refuse a running turn with TURN_RUNNING, then undo it once it has ended", async () => {
    const user = await newUser(rig.server, "undo-running");
    const gate = deferred();
    rig.fake.enqueue(
      toolCallReply([{ id: "call_running", name: "add_task", args: { title: "Half done" } }]),
      textReply("Still thinking about it, and done.", { gate: { afterDeltas: 1, until: gate.promise } }),
    );
    const started = await ok<{ sendMessage: { turn: { id: string } } }>(user, SEND, { input: { content: "add it", waitForReply: false } });
    const turnId = started.sendMessage.turn.id;
    try {
      // Paused at the gate: the tool call committed, the answer's first word stored.
      await vi.waitFor(
        async () => {
          const message = await rig.server.db.message.findFirst({ where: { userId: user.id, role: "assistant", status: "STREAMING" } });
          expect(message?.content, "the answer paused at the gate").toBe("Still ");
        },
        { timeout: 15_000, interval: 20 },
      );
      const before = await snapshot(rig.server.db, user.id);
      expect(await undoCheckOf(user, turnId)).toMatchObject({ canUndo: false, code: "TURN_RUNNING" });
      const error = errorOf(await user.gql(UNDO, { id: turnId }));
      expect(error.code).toBe("TURN_RUNNING");
      expect(await snapshot(rig.server.db, user.id)).toEqual(before);
    } finally {
      gate.resolve();
    }
    await vi.waitFor(
      async () => {
        const turn = await rig.server.db.turn.findUnique({ where: { id: parseId(turnId, "id", "Turn") } });
        expect(turn?.status, "the turn's end").toBe("COMPLETED");
      },
      { timeout: 15_000, interval: 20 },
    );
    expect((await undo(user, turnId)).reverted.map((event) => event.kind)).toEqual(["DELETED"]);
    expect(await rig.server.db.task.count({ where: { userId: user.id } })).toBe(0);
  });

  it("should say beforehand whether an undo would succeed and why not, changing nothing, and name each user message's turn", async () => {
    const user = await newUser(rig.server, "undo-check");
    const task = await addTask(user, "Return books");
    const quiet = await assistantTurn(rig, user, [{ name: "list_tasks", args: { status: "all" } }]);
    const turn = await assistantTurn(
      rig,
      user,
      [{ name: "update_task", args: { task_id: task.id, title: "Return the books" } }],
      quiet.conversationId,
    );

    const sent = await rig.server.db.turn.findUniqueOrThrow({ where: { id: parseId(turn.turnId, "id", "Turn") } });
    const asked = await ok<{ node: { role: string; turn: { id: string } | null } }>(user, MESSAGE_TURN, {
      id: toGlobalId("Message", sent.userMessageId),
    });
    expect(asked.node).toEqual({ role: "USER", turn: { id: turn.turnId } });

    expect(await undoCheckOf(user, quiet.turnId)).toEqual({
      canUndo: false,
      code: "NOTHING_TO_UNDO",
      reason: "The turn changed no task",
      taskIds: [],
    });
    expect(await undoCheckOf(user, turn.turnId)).toEqual({ canUndo: true, code: null, reason: null, taskIds: [] });
    await ok(user, COMPLETE, { id: task.id });
    const before = await snapshot(rig.server.db, user.id);
    expect(await undoCheckOf(user, turn.turnId)).toEqual({
      canUndo: false,
      code: "CONFLICT",
      reason: "1 of the tasks it changed was changed again since",
      taskIds: [task.id],
    });
    expect(await snapshot(rig.server.db, user.id)).toEqual(before);
    // What it said is what undoTurn does.
    expect(errorOf(await user.gql(UNDO, { id: turn.turnId }))).toMatchObject({ code: "CONFLICT", extensions: { taskIds: [task.id] } });

    const fresh = await assistantTurn(rig, user, [{ name: "add_task", args: { title: "Fresh" } }], quiet.conversationId);
    await undo(user, fresh.turnId);
    expect(await undoCheckOf(user, fresh.turnId)).toMatchObject({ canUndo: false, code: "ALREADY_UNDONE" });
  });

  it("should answer NOT_FOUND for another user's turn, exactly as for a turn that does not exist, and change nothing", async () => {
    const [owner, stranger] = [await newUser(rig.server, "undo-owner"), await newUser(rig.server, "undo-stranger")];
    const turn = await assistantTurn(rig, owner, [{ name: "add_task", args: { title: "Mine" } }]);
    const before = await snapshot(rig.server.db, owner.id);
    const foreign = errorOf(await stranger.gql(UNDO, { id: turn.turnId }));
    const ghost = errorOf(await stranger.gql(UNDO, { id: Buffer.from(`Turn:${crypto.randomUUID()}`).toString("base64") }));
    expect(foreign).toEqual(ghost);
    expect(foreign).toMatchObject({ code: "NOT_FOUND", message: "Turn not found" });
    expect(await snapshot(rig.server.db, owner.id)).toEqual(before);
  });

  it("should let an undo racing a user's update either win whole or fail with CONFLICT, never half", async () => {
    const user = await newUser(rig.server, "undo-race");
    const outcomes = { undone: 0, conflict: 0 };
    const deadline = Date.now() + 20_000;
    for (let round = 0; round < 16 && Date.now() < deadline; round += 1) {
      const [a, b] = [await addTask(user, `a${round}`), await addTask(user, `b${round}`)];
      const turn = await assistantTurn(rig, user, [
        { name: "update_task", args: { task_id: a.id, title: `a${round} by the assistant` } },
        { name: "update_task", args: { task_id: b.id, title: `b${round} by the assistant` } },
      ]);
      // The update leaves 0–24 ms after the undo, so that it lands before, during and after the undo's transaction.
      const [undone, updated] = await Promise.all([
        user.gql<{ undoTurn: UndoView }>(UNDO, { id: turn.turnId }),
        sleep((round * 7) % 25).then(() => user.gql(UPDATE, { input: { id: a.id, description: `the user's, round ${round}` } })),
      ]);
      expect(updated.errors, JSON.stringify(updated.errors)).toBeUndefined();
      const [rowA, rowB] = [await row(a.id), await row(b.id)];
      // The user's write is never lost, whichever came first.
      expect(rowA?.description).toBe(`the user's, round ${round}`);
      if (undone.errors) {
        expect(errorOf(undone)).toMatchObject({ code: "CONFLICT", extensions: { taskIds: [a.id] } });
        expect([rowA?.title, rowB?.title]).toEqual([`a${round} by the assistant`, `b${round} by the assistant`]);
        expect((await turnEvents(user, turn.turnId)).undoneAt).toBeNull();
        outcomes.conflict += 1;
      } else {
        expect(undone.data?.undoTurn.reverted).toHaveLength(2);
        expect([rowA?.title, rowB?.title]).toEqual([`a${round}`, `b${round}`]);
        // The user's update waited for the undo and applied on top of it.
        expect((await historyOf(user, a.id)).map((event) => event.actor)).toEqual(["USER", "UNDO", "ASSISTANT", "USER"]);
        outcomes.undone += 1;
      }
    }
    expect(outcomes.undone + outcomes.conflict).toBeGreaterThan(0);
    console.log(`undo racing an update: ${outcomes.undone} undone whole, ${outcomes.conflict} refused with CONFLICT`);
  });
});
