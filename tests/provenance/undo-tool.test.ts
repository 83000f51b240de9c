import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { parseId } from "../../src/lib/ids.js";
import { deferred } from "../chat/support.js";
import { DECIDE } from "../chat/approval-support.js";
import { cohereAssistant, startChatRig, type ChatRig } from "../helpers/chat.js";
import { textReply, toolCallReply } from "../helpers/fake-cohere.js";
import { newUser, startTestServer, type TestUser } from "../helpers/server.js";
import { snapshot } from "../security/isolation-support.js";
import { addTask, assistantTurn, historyOf, ok, resultOf, SEND, turnEvents, UNDO, UPDATE, type UndoView } from "./support.js";

/** The assistant's undo_turn: the same undo, asked for in a chat, and itself undoable. */
describe("the assistant's undo_turn", () => {
  let rig: ChatRig;

  beforeAll(async () => {
    // About provenance and undo: the assistant's deletes and undo_turn run at once (approval has its own tests, tests/chat/approval*.test.ts).
    rig = await startChatRig({ assistant: { approvalPolicy: "none" } });
  });

  afterAll(async () => {
    await rig?.server.close();
    await rig?.fake.close();
  });

  const row = (taskId: string) => rig.server.db.task.findUnique({ where: { id: parseId(taskId, "id", "Task") } });

  /** A turn whose model calls undo_turn once with `args`; the call's error or result. */
  async function undoCall(user: TestUser, conversationId: string, args: Record<string, unknown>, callId = `call_undo_${crypto.randomUUID()}`) {
    const turn = await assistantTurn(rig, user, [{ id: callId, name: "undo_turn", args }], conversationId);
    const [call] = turn.toolCalls;
    return { turn, callId, error: call!.error, result: call!.result };
  }

  it("should undo the latest turn that changed tasks, record who asked, and restore when the undoing turn is undone", async () => {
    const user = await newUser(rig.server, "undo-tool");
    const first = await assistantTurn(rig, user, [{ name: "add_task", args: { title: "Buy milk" } }]);
    const milk = resultOf(first, "add_task");
    const chat = first.conversationId;
    // A turn that changed nothing is not "the latest turn that changed tasks".
    await assistantTurn(rig, user, [{ name: "list_tasks", args: { status: "all" } }], chat);

    const undoing = await undoCall(user, chat, {});
    expect(undoing.error).toBeNull();
    expect(undoing.result).toEqual({
      undone_turn_id: first.turnId,
      undo_turn_id: undoing.turn.turnId,
      reverted: [{ task_id: milk.id, kind: "DELETED" }],
      tasks: [],
    });
    expect(await row(milk.id)).toBeNull();
    expect((await turnEvents(user, first.turnId)).undoneAt).not.toBeNull();
    // The undo's event: UNDO of the first turn, asked for by this turn's call.
    const [deletion] = (await turnEvents(user, undoing.turn.turnId)).taskEvents;
    expect(deletion).toMatchObject({
      kind: "DELETED",
      actor: "UNDO",
      taskId: milk.id,
      turn: { id: first.turnId },
      undoingTurn: { id: undoing.turn.turnId },
      toolCallId: undoing.callId,
    });

    // "Undo that": the latest turn that changed tasks is now the undoing one, so the task comes back, same id.
    const redo = await undoCall(user, chat, {});
    expect(redo.error).toBeNull();
    expect(redo.result).toMatchObject({ undone_turn_id: undoing.turn.turnId, reverted: [{ task_id: milk.id, kind: "CREATED" }] });
    expect(await row(milk.id)).toMatchObject({ title: "Buy milk", completed: false });
    expect((await historyOf(user, milk.id)).map((event) => [event.kind, event.actor, event.turn?.id, event.undoingTurn?.id])).toEqual([
      ["CREATED", "UNDO", undoing.turn.turnId, redo.turn.turnId],
      ["DELETED", "UNDO", first.turnId, undoing.turn.turnId],
      ["CREATED", "ASSISTANT", first.turnId, undefined],
    ]);

    // And a client can undo the redo through the API: the task goes again.
    const undone = (await ok<{ undoTurn: UndoView }>(user, UNDO, { id: redo.turn.turnId })).undoTurn;
    expect(undone.reverted.map((event) => [event.kind, event.actor, event.turn?.id, event.undoingTurn])).toEqual([
      ["DELETED", "UNDO", redo.turn.turnId, null],
    ]);
    expect(await row(milk.id)).toBeNull();
  });

  it("should return each refusal to the model as a tool error, and change nothing", async () => {
    const [user, other] = [await newUser(rig.server, "undo-tool-refusals"), await newUser(rig.server, "undo-tool-other")];
    const first = await assistantTurn(rig, user, [{ name: "add_task", args: { title: "Book dentist" } }]);
    const chat = first.conversationId;
    const task = resultOf(first, "add_task");
    const elsewhere = await assistantTurn(rig, user, [{ name: "add_task", args: { title: "In another chat" } }]);
    const foreign = await assistantTurn(rig, other, [{ name: "add_task", args: { title: "Someone else's" } }]);

    await ok(user, UPDATE, { input: { id: task.id, title: "Book the dentist" } });
    const before = await snapshot(rig.server.db, user.id);
    const conflict = await undoCall(user, chat, {});
    expect(conflict.error).toBe(`Cannot undo the turn: 1 of its tasks changed since; nothing was changed. Tasks changed since: ${task.id}.`);
    const notHere = await undoCall(user, chat, { turn_id: elsewhere.turnId });
    const notMine = await undoCall(user, chat, { turn_id: foreign.turnId });
    expect(notHere.error).toBe("Turn not found in this conversation. Omit turn_id to undo the latest turn that changed tasks.");
    expect(notMine.error).toBe(notHere.error);
    expect((await undoCall(user, chat, { turn_id: task.id })).error).toBe(`turn_id "${task.id}" is not a turn id`);
    // Only the messages of these turns were added: no task, event or turn changed.
    const after = await snapshot(rig.server.db, user.id);
    for (const table of ["tasks", "task_events", "deleted_tasks"]) expect(after[table], table).toEqual(before[table]);
    expect(await rig.server.db.turn.count({ where: { userId: user.id, undoneAt: { not: null } } })).toBe(0);

    await ok(user, UNDO, { id: elsewhere.turnId });
    expect((await undoCall(user, elsewhere.conversationId, { turn_id: elsewhere.turnId })).error).toBe("The turn was already undone");
    const fresh = await assistantTurn(rig, user, [{ name: "list_tasks", args: {} }]);
    expect((await undoCall(user, fresh.conversationId, {})).error).toBe(
      "No earlier turn of this conversation changed tasks, so there is nothing to undo",
    );
  });

  it("should refuse to undo the turn that is calling it, with TURN_RUNNING as a tool error", async () => {
    const user = await newUser(rig.server, "undo-tool-self");
    const known = deferred();
    let turnId = "";
    // The model asks to undo the very turn it runs in; it learns the id once sendMessage answered.
    rig.fake.enqueue(async () => {
      await known.promise;
      return toolCallReply([{ id: "call_undo_self", name: "undo_turn", args: { turn_id: turnId } }]);
    }, textReply("I cannot undo this turn."));
    const started = await ok<{ sendMessage: { turn: { id: string } } }>(user, SEND, { input: { content: "undo yourself", waitForReply: false } });
    turnId = started.sendMessage.turn.id;
    known.resolve();
    const ended = await waitForTurn(turnId);
    expect(ended.status).toBe("COMPLETED");
    const result = await rig.server.db.message.findFirst({ where: { userId: user.id, role: "tool", toolCallId: "call_undo_self" } });
    expect(JSON.parse(result!.content)).toEqual({ error: "The turn is still running: undo it once it has ended (or stop it with cancelTurn)" });
    expect(ended.undoneAt).toBeNull();
  });

  it("should hold undo_turn for approval under the default policy, and record the undo with the call that asked once approved", async () => {
    const server = await startTestServer({ assistant: cohereAssistant(rig.fake) });
    try {
      const user = await newUser(server, "undo-tool-approval");
      const first = await assistantTurn({ ...rig, server }, user, [{ name: "add_task", args: { title: "Pay the gas bill" } }]);
      const task = resultOf(first, "add_task");
      rig.fake.enqueue(toolCallReply([{ id: "call_undo_held", name: "undo_turn", args: {} }], "Undoing."), textReply("Undone."));
      const sent = await user.gql<{ sendMessage: { turn: { id: string; status: string } } }>(SEND, {
        input: { content: "undo that", conversationId: first.conversationId },
      });
      expect(sent.data?.sendMessage.turn.status).toBe("REQUIRES_ACTION");
      // Held: nothing undone yet.
      expect(await server.db.task.findUnique({ where: { id: parseId(task.id, "id", "Task") } })).not.toBeNull();
      const decided = await user.gql(DECIDE, {
        turnId: sent.data!.sendMessage.turn.id,
        decisions: [{ toolCallId: "call_undo_held", approve: true }],
      });
      expect(decided.errors, JSON.stringify(decided.errors)).toBeUndefined();
      await vi.waitFor(
        async () => expect(await server.db.task.findUnique({ where: { id: parseId(task.id, "id", "Task") } }), "the undo").toBeNull(),
        { timeout: 15_000, interval: 20 },
      );
      const [deletion] = (await turnEvents(user, sent.data!.sendMessage.turn.id)).taskEvents;
      expect(deletion).toMatchObject({
        kind: "DELETED",
        actor: "UNDO",
        turn: { id: first.turnId },
        undoingTurn: { id: sent.data!.sendMessage.turn.id },
        toolCallId: "call_undo_held",
      });
    } finally {
      await server.close();
    }
  });

  function waitForTurn(turnId: string) {
    return vi.waitFor(
      async () => {
        const turn = await rig.server.db.turn.findUniqueOrThrow({ where: { id: parseId(turnId, "id", "Turn") } });
        expect(turn.status, "the turn's end").not.toBe("RUNNING");
        return turn;
      },
      { timeout: 15_000, interval: 20 },
    );
  }
});
