import { z } from "zod";
import { describe, expect, it } from "vitest";
import { argumentsHash, reviewCall, type ApprovalPolicy } from "../../src/chat/approval-policy.js";
import type { StoredToolCall } from "../../src/chat/history.js";
import { declined, NOT_RUN_CHANGED, planCalls, type PlanFacts } from "../../src/chat/tool-execution.js";
import { findTool, type ToolDefinition } from "../../src/chat/tools.js";
import { turnSteps, unansweredCalls } from "../../src/chat/turn-steps.js";
import { toGlobalId } from "../../src/lib/ids.js";

/**
 * Which calls CHAT_APPROVAL holds (src/chat/approval-policy.ts) and how a
 * step's calls are planned around approvals (planCalls): pure functions over
 * the real tool registry.
 */

const TASK = "0b0b8a3c-3f4f-4c52-9a43-5a8a3c0e2f11";
const task = toGlobalId("Task", TASK);

function call(name: string, args: Record<string, unknown>, id = `call_${name}`): StoredToolCall {
  return { id, type: "function", function: { name, arguments: JSON.stringify(args) } };
}

/** A bulk tool as issue 25 will add: it declares, from its validated input, when it changes more than one task. */
const completeTasks: ToolDefinition = {
  name: "complete_tasks",
  description: "Complete several tasks.",
  input: z.object({ task_ids: z.array(z.string()).min(1) }),
  output: z.object({}),
  annotations: { readOnlyHint: false, destructiveHint: false },
  run: async () => ({}),
  changesManyTasks: (input: { task_ids: string[] }) => input.task_ids.length > 1,
  targetsOf: () => ({}),
};
const withBulk = (name: string) => (name === completeTasks.name ? completeTasks : findTool(name));

describe("CHAT_APPROVAL", () => {
  const asks = (policy: ApprovalPolicy, name: string, args: Record<string, unknown>) => reviewCall(policy, name, args, withBulk).asks;

  it("should hold delete_task and bulk calls under destructive, naming the deleted task, and nothing else", () => {
    expect(reviewCall("destructive", "delete_task", { task_id: task })).toEqual({ asks: true, taskIds: [TASK], targets: [TASK] });
    expect(asks("destructive", "complete_tasks", { task_ids: [task, task] })).toBe(true);
    expect(asks("destructive", "complete_tasks", { task_ids: [task] })).toBe(false);
    for (const [name, args] of [
      ["add_task", { title: "x" }],
      ["complete_task", { task_id: task }],
      ["update_task", { task_id: task, title: "y" }],
      ["list_tasks", { status: "all" }],
    ] as const) {
      expect(asks("destructive", name, args), name).toBe(false);
    }
  });

  it("should hold every write and no read under all, and nothing under none", () => {
    for (const name of ["add_task", "complete_task", "update_task", "delete_task"]) {
      expect(asks("all", name, name === "add_task" ? { title: "x" } : { task_id: task }), name).toBe(true);
    }
    expect(asks("all", "list_tasks", { status: "pending" })).toBe(false);
    expect(asks("none", "delete_task", { task_id: task })).toBe(false);
    expect(asks("none", "complete_tasks", { task_ids: [task, task] })).toBe(false);
  });

  it("should never hold a call that cannot run: an unknown tool, invalid arguments, an id that is not a task id", () => {
    expect(asks("all", "drop_database", {})).toBe(false);
    expect(asks("destructive", "delete_task", {})).toBe(false);
    expect(asks("destructive", "delete_task", { task_id: "garbage" })).toBe(false);
    expect(asks("destructive", "delete_task", { task_id: toGlobalId("Conversation", TASK) })).toBe(false);
  });

  it("should hash a call by its tool and canonical arguments: key order does not matter, anything else does", () => {
    const hash = argumentsHash(call("update_task", { task_id: task, title: "a" }));
    expect(hash).toMatch(/^[0-9a-f]{64}$/);
    const reordered: StoredToolCall = {
      id: "other",
      type: "function",
      function: { name: "update_task", arguments: `{"title":"a","task_id":"${task}"}` },
    };
    expect(argumentsHash(reordered)).toBe(hash);
    expect(argumentsHash(call("update_task", { task_id: task, title: "b" }))).not.toBe(hash);
    expect(argumentsHash(call("complete_task", { task_id: task, title: "a" }))).not.toBe(hash);
  });
});

describe("planCalls with approvals", () => {
  const user = { role: "user" as const, toolCalls: null, toolCallId: null };
  const step = (calls: StoredToolCall[]) => ({ role: "assistant" as const, toolCalls: calls as never, toolCallId: null });
  const facts = (over: Partial<PlanFacts> = {}): PlanFacts => ({ approvals: new Map(), policy: "destructive", owned: new Set([TASK]), ...over });

  it("should hold an asked-about call on the user's task, run one on a task they do not have, and follow each approval", () => {
    const del = call("delete_task", { task_id: task }, "del");
    const add = call("add_task", { title: "x" }, "add");
    const calls = unansweredCalls(turnSteps([user, step([del, add])]));
    expect(planCalls(calls, facts()).map((plan) => plan.kind)).toEqual(["hold", "run"]);
    expect(planCalls(calls, facts({ owned: new Set() })).map((plan) => plan.kind)).toEqual(["run", "run"]);

    const hash = argumentsHash(del);
    const approval = (status: "APPROVED" | "REJECTED" | "PENDING", reason: string | null = null) =>
      facts({ approvals: new Map([["del", { status, argumentsHash: hash, reason }]]) });
    expect(planCalls(calls, approval("APPROVED"))[0]).toEqual({ kind: "run", call: del });
    expect(planCalls(calls, approval("PENDING"))[0]).toEqual({ kind: "hold", call: del, argumentsHash: hash });
    expect(planCalls(calls, approval("REJECTED", "keep it"))[0]).toEqual({
      kind: "answer",
      call: del,
      outcome: { ok: false, error: declined("keep it") },
    });
    expect(declined("keep it")).toBe("Not run: the user declined this call. Their reason: keep it");
    expect(declined(null)).toBe("Not run: the user declined this call. They gave no reason.");
    // An approval given for other arguments never runs this call.
    const elsewhere = facts({ approvals: new Map([["del", { status: "APPROVED", argumentsHash: "0".repeat(64), reason: null }]]) });
    expect(planCalls(calls, elsewhere)[0]).toEqual({ kind: "answer", call: del, outcome: { ok: false, error: NOT_RUN_CHANGED } });
  });
});
