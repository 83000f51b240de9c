import { describe, expect, it } from "vitest";
import type { StoredToolCall } from "../../src/chat/history.js";
import type { Message } from "../../src/generated/prisma/client.js";
import { firstStop, hasRepeatedToolCall, stepCountIs, stopRules } from "../../src/chat/stop-conditions.js";
import { NOT_RUN_REPEAT, planCalls } from "../../src/chat/tool-execution.js";
import { markRepeats, turnSteps, unansweredCalls, type TurnStep } from "../../src/chat/turn-steps.js";

/**
 * The pure parts of the turn loop, without a database or a model: the stop
 * conditions over the steps so far, the steps read from a turn's messages
 * (which calls repeat an earlier one, which are answered), and the plan that
 * sorts a step's calls before any runs.
 */

let ids = 0;
function call(name: string, args: Record<string, unknown> | string = {}): StoredToolCall {
  ids += 1;
  const text = typeof args === "string" ? args : JSON.stringify(args);
  return { id: `call_${ids}`, type: "function", function: { name, arguments: text } };
}

type Row = Pick<Message, "role" | "toolCalls" | "toolCallId">;

function user(): Row {
  return { role: "user", toolCalls: null, toolCallId: null };
}
function assistant(...calls: StoredToolCall[]): Row {
  return { role: "assistant", toolCalls: calls.length > 0 ? (calls as unknown as Row["toolCalls"]) : null, toolCallId: null };
}
function result(of: StoredToolCall): Row {
  return { role: "tool", toolCalls: null, toolCallId: of.id };
}
/** A turn in which every call has its result, one step per group. */
function answeredSteps(...groups: StoredToolCall[][]): TurnStep[] {
  return turnSteps([user(), ...groups.flatMap((calls) => [assistant(...calls), ...calls.map(result)]), assistant()]);
}

describe("stop conditions", () => {
  it("should hold for stepCountIs(3) once three steps have run, and not before", () => {
    const holds = (count: number) => stepCountIs(3)({ steps: Array.from({ length: count }, (): TurnStep => ({ calls: [] })) });
    expect([0, 1, 2, 3, 4].map(holds)).toEqual([false, false, false, true, true]);
  });

  it("should hold for hasRepeatedToolCall only when the latest step repeats a call", () => {
    const add = { title: "X" };
    expect(hasRepeatedToolCall({ steps: [] })).toBe(false);
    expect(hasRepeatedToolCall({ steps: answeredSteps([call("add_task", add)]) })).toBe(false);
    expect(hasRepeatedToolCall({ steps: answeredSteps([call("add_task", add)], [call("add_task", add)]) })).toBe(true);
    // The model moved on after the repeat (a later step, as a resumed turn could hold): the latest step decides.
    const movedOn = answeredSteps([call("add_task", add)], [call("add_task", add)], [call("add_task", { title: "Y" })]);
    expect(hasRepeatedToolCall({ steps: movedOn })).toBe(false);
  });

  it("should name the first stop that holds: the repeat before the step limit, with what each message names", () => {
    const rules = stopRules(2);
    const read = { status: "pending" };
    expect(firstStop(rules, [])).toBeUndefined();
    expect(firstStop(rules, answeredSteps([call("list_tasks", read)]))).toBeUndefined();
    expect(firstStop(rules, answeredSteps([call("list_tasks", read)], [call("list_tasks", { status: "all" })]))).toEqual({
      code: "ASSISTANT_STEP_LIMIT",
      detail: "2",
    });
    expect(
      firstStop(
        rules,
        answeredSteps([call("list_tasks", read)], [call("complete_task", { task_id: "t" }), call("list_tasks", read), call("list_tasks", read)]),
      ),
    ).toEqual({
      code: "ASSISTANT_REPEATED_TOOL_CALL",
      detail: 'list_tasks({"status":"pending"})',
    });
  });
});

describe("the steps of a turn", () => {
  it("should count a write as a repeat of any earlier identical call, whatever came between", () => {
    const calls = [call("add_task", { title: "X" }), call("list_tasks"), call("add_task", { title: "Y" }), call("add_task", { title: "X" })];
    expect(markRepeats(calls)).toEqual([false, false, false, true]);
  });

  it("should count a read as a repeat only with no write run in between", () => {
    const all = { status: "all" };
    expect(markRepeats([call("list_tasks", all), call("list_tasks", all)])).toEqual([false, true]);
    expect(markRepeats([call("list_tasks", all), call("complete_task", { task_id: "t" }), call("list_tasks", all)])).toEqual([false, false, false]);
    // A repeated write does not run, so it changes nothing a later read could see.
    const add = { title: "X" };
    expect(markRepeats([call("add_task", add), call("list_tasks", all), call("add_task", add), call("list_tasks", all)])).toEqual([
      false,
      false,
      true,
      true,
    ]);
  });

  it("should compare arguments whatever their key order or spacing, and unparsable ones as text", () => {
    const first = call("update_task", '{"task_id":"t","title":"A"}');
    const reordered = call("update_task", '{ "title": "A", "task_id": "t" }');
    expect(markRepeats([first, reordered])).toEqual([false, true]);
    expect(markRepeats([call("add_task", "{not json"), call("add_task", "{not json"), call("add_task", "{not json ")])).toEqual([false, true, false]);
  });

  it("should read one step per assistant message with calls, with each call's result and repeat flag, in seq order", () => {
    const list = call("list_tasks", { status: "all" });
    const again = call("list_tasks", { status: "all" });
    const add = call("add_task", { title: "X" });
    const steps = turnSteps([user(), assistant(list), result(list), assistant(again, add), result(again)]);
    expect(steps.map((step) => step.calls.map((c) => [c.call.id, c.answered, c.repeats]))).toEqual([
      [[list.id, true, false]],
      [
        [again.id, true, true],
        [add.id, false, false],
      ],
    ]);
    expect(unansweredCalls(steps).map((c) => c.call.id)).toEqual([add.id]);
    expect(turnSteps([user(), assistant()])).toEqual([]);
  });

  it("should plan a step's calls in call order: repeats answered without running, the rest run", () => {
    const add = call("add_task", { title: "X" });
    const again = call("add_task", { title: "X" });
    const list = call("list_tasks");
    const [, second] = turnSteps([user(), assistant(add), result(add), assistant(again, list)]);
    expect(planCalls(unansweredCalls([second!]), { approvals: new Map(), policy: "destructive", owned: new Set() })).toEqual([
      { kind: "answer", call: again, outcome: { ok: false, error: NOT_RUN_REPEAT } },
      { kind: "run", call: list },
    ]);
  });
});
