import type { DbClient } from "../db/client.js";
import { recordToolCall, type TurnIdentity } from "../domain/conversation-log.js";
import type { NewMessage } from "../domain/messages.js";
import { approvalsOfTurn, type HeldCall } from "../domain/tool-approvals.js";
import { withSavepoint } from "../domain/undo.js";
import type { ToolApproval } from "../generated/prisma/client.js";
import { argumentsHash, DEFAULT_APPROVAL_POLICY, ownedTargets, reviewStoredCall, type ApprovalPolicy } from "./approval-policy.js";
import type { StoredToolCall } from "./history.js";
import { parseArguments, runTool, type ToolContext, type ToolOutcome } from "./tools.js";
import { NO_CHAT_TELEMETRY, type TurnRun } from "./turn-run.js";
import type { StepCall } from "./turn-steps.js";

/** What the model is told of a call that repeats an earlier one (see markRepeats). */
export const NOT_RUN_REPEAT = "Not run: this exact call was already made in this turn. Use its earlier result.";
/** What the model is told of a call whose approval ran out (the turn ends there, so only a race shows it). */
export const NOT_RUN_EXPIRED = "Not run: the user did not approve this call in time.";
/** A held call whose stored arguments no longer hash to what its approval was given for: never run on that approval. */
export const NOT_RUN_CHANGED = "Not run: this call is not the one the user was asked about.";

/** What the model is told of a call the user rejected: that they declined, and why, if they said. */
export function declined(reason: string | null): string {
  const why = reason?.trim() ? ` Their reason: ${reason.trim()}` : " They gave no reason.";
  return `Not run: the user declined this call.${why}`;
}

/** What becomes of a call, decided before any call of the step runs. */
export type PlannedCall =
  | { kind: "run"; call: StoredToolCall }
  /** Answered without running, with this outcome. */
  | { kind: "answer"; call: StoredToolCall; outcome: ToolOutcome }
  /** Held until the user decides (CHAT_APPROVAL): stored as a pending approval, and the turn pauses. */
  | { kind: "hold"; call: StoredToolCall; argumentsHash: string };

/** What planning needs to know beyond the calls: the turn's approvals, the policy, and which named tasks are the user's. */
export interface PlanFacts {
  approvals: ReadonlyMap<string, Pick<ToolApproval, "status" | "argumentsHash" | "reason">>;
  policy: ApprovalPolicy;
  /** Raw ids of the user's own among the tasks and turns the calls name. */
  owned: ReadonlySet<string>;
}

/** A call the user has decided on (or is deciding on): what its approval says. */
function planDecided(call: StoredToolCall, approval: Pick<ToolApproval, "status" | "argumentsHash" | "reason">): PlannedCall {
  const hash = argumentsHash(call);
  if (approval.argumentsHash !== hash) return { kind: "answer", call, outcome: { ok: false, error: NOT_RUN_CHANGED } };
  switch (approval.status) {
    case "APPROVED":
      return { kind: "run", call };
    case "REJECTED":
      return { kind: "answer", call, outcome: { ok: false, error: declined(approval.reason) } };
    case "EXPIRED":
      return { kind: "answer", call, outcome: { ok: false, error: NOT_RUN_EXPIRED } };
    case "PENDING":
      return { kind: "hold", call, argumentsHash: hash };
  }
}

/**
 * Sorts the calls before any of them runs: the place where a step's calls
 * are told apart, in call order. A repeat is answered; a call with an
 * approval follows it (approved runs, rejected is answered with the user's
 * reason, pending stays held); a call the policy asks about is held, unless
 * a task it names is not the user's (it cannot change anything: it runs and
 * answers "not found", exactly as for a task that never existed); the rest run.
 */
export function planCalls(calls: readonly StepCall[], facts: PlanFacts): PlannedCall[] {
  return calls.map(({ call, repeats }): PlannedCall => {
    if (repeats) return { kind: "answer", call, outcome: { ok: false, error: NOT_RUN_REPEAT } };
    const approval = facts.approvals.get(call.id);
    if (approval) return planDecided(call, approval);
    const review = reviewStoredCall(facts.policy, call);
    if (!review.asks || !review.targets.every((id) => facts.owned.has(id))) return { kind: "run", call };
    return { kind: "hold", call, argumentsHash: argumentsHash(call) };
  });
}

/** What tool execution needs of the turn. */
export type ToolRun = Pick<TurnRun, "db" | "turn" | "signal" | "checkStop" | "decided" | "log" | "zone"> & {
  deps: Pick<TurnRun["deps"], "approvalPolicy" | "telemetry">;
};

/** Reads what planning needs: the turn's approvals, and which of the tasks the asked-about calls name are the user's. */
async function planFacts(run: ToolRun, calls: readonly StepCall[]): Promise<PlanFacts> {
  const policy = run.deps.approvalPolicy ?? DEFAULT_APPROVAL_POLICY;
  // A turn that never paused has no approvals: no read for it, unless a call would be held now.
  const asking = calls.some(({ call }) => reviewStoredCall(policy, call).asks);
  const approvals = run.decided || asking ? await approvalsOfTurn(run.db, run.turn.id) : new Map<string, ToolApproval>();
  const named = calls.flatMap(({ call }) => (approvals.has(call.id) ? [] : reviewStoredCall(policy, call).targets));
  return { approvals, policy, owned: await ownedTargets(run.db, run.turn.userId, named) };
}

/** How a step's calls came out: all answered, the turn stopped, or some held for the user (the others answered). */
export type Execution = "done" | "stopped" | { held: HeldCall[] };

/**
 * Runs the calls through the tool registry, in order, each in its own
 * transaction with its stored result (kept in run.log), none once the turn is asked to stop.
 * Held calls are skipped: the calls that need no approval still run, and the
 * held ones are returned for the turn to pause on.
 */
export async function executeToolCalls(run: ToolRun, calls: readonly StepCall[]): Promise<Execution> {
  const planned = planCalls(calls, await planFacts(run, calls));
  const telemetry = run.deps.telemetry ?? NO_CHAT_TELEMETRY;
  for (const plan of planned) {
    if (plan.kind === "hold") continue;
    if (run.signal.aborted) return "stopped";
    const stored = await recordToolCall(run.db, run.turn, async (tx) => {
      if (plan.kind === "answer") return toolMessage(plan.call, plan.outcome);
      const call = { id: plan.call.id, name: plan.call.function.name };
      return toolMessage(plan.call, await telemetry.toolCall(run.turn, call, () => runCall(toolContext(run, tx, plan.call), plan.call)));
    });
    if (!stored) {
      await run.checkStop();
      return "stopped";
    }
    run.log.add({ messages: [stored] });
  }
  const held = planned.flatMap((plan) =>
    plan.kind === "hold" ? [{ toolCallId: plan.call.id, toolName: plan.call.function.name, argumentsHash: plan.argumentsHash }] : [],
  );
  return held.length > 0 ? { held } : "done";
}

/** A tool call of this turn: its writes are the assistant's, in this turn, by this call. */
function toolContext({ turn, zone }: ToolRun, tx: DbClient, call: StoredToolCall): ToolContext {
  return {
    zone,
    db: tx,
    userId: turn.userId,
    cause: { actor: "ASSISTANT", turnId: turn.id, toolCallId: call.id },
    turn: { id: turn.id, conversationId: turn.conversationId },
    atomically: (work) => withSavepoint(tx, work),
  };
}

/** One call through the registry; arguments that are not a JSON object are an error the model can read. */
async function runCall(context: ToolContext, call: StoredToolCall): Promise<ToolOutcome> {
  const parsed = parseArguments(call.function.arguments);
  if (!parsed.ok) return { ok: false, error: `Invalid arguments for ${call.function.name}: ${parsed.error}` };
  return runTool(context, call.function.name, parsed.value);
}

function toolMessage(call: StoredToolCall, outcome: ToolOutcome): NewMessage {
  const document = outcome.ok ? outcome.result : { error: outcome.error };
  return { role: "tool", toolCallId: call.id, content: JSON.stringify(document) };
}
