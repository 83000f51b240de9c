import { createHash } from "node:crypto";
import type { DbClient } from "../db/client.js";
import { findOwnedTurns } from "../domain/conversation-log.js";
import { findOwnedTasks } from "../domain/tasks.js";
import type { StoredToolCall } from "./history.js";
import { findTool, parseArguments, type ToolDefinition } from "./tools.js";
import { callSignature } from "./turn-steps.js";

/**
 * When the assistant asks the user before a tool call runs (CHAT_APPROVAL):
 * - destructive (the default): a tool that says it destroys (destructiveHint:
 *   delete_task), and any call that would change more than one task (a tool
 *   declares that of its validated arguments: changesManyTasks);
 * - all: every write tool;
 * - none: never.
 * Read tools never wait, and neither does a call that cannot run (unknown
 * tool, invalid arguments, an id that is not a task id, or names a task or
 * turn that is not the user's): it answers with its error at once, as it
 * would have.
 */
export const APPROVAL_POLICIES = ["destructive", "all", "none"] as const;
export type ApprovalPolicy = (typeof APPROVAL_POLICIES)[number];

export const DEFAULT_APPROVAL_POLICY: ApprovalPolicy = "destructive";
/** CHAT_APPROVAL_TTL's default: 15 minutes. */
export const DEFAULT_APPROVAL_TTL_MS = 15 * 60_000;

/** What the policy says of one call. */
export interface CallReview {
  /** The user is asked before it runs. */
  asks: boolean;
  /** The tasks it names (raw ids), what a card shows of it. */
  taskIds: string[];
  /** Everything it names (tasks and turns, raw ids): each must be the user's for the question to be worth asking. */
  targets: string[];
}

const RUNS: CallReview = { asks: false, taskIds: [], targets: [] };

/**
 * Whether `policy` asks before a call of tool `name` with arguments `args` (a
 * parsed JSON object) runs. `find` is the registry's lookup.
 */
export function reviewCall(
  policy: ApprovalPolicy,
  name: string,
  args: unknown,
  find: (name: string) => ToolDefinition | undefined = findTool,
): CallReview {
  if (policy === "none") return RUNS;
  const tool = find(name);
  if (!tool || tool.annotations.readOnlyHint === true) return RUNS;
  const parsed = tool.input.safeParse(args);
  if (!parsed.success) return RUNS;
  const named = tool.targetsOf ? tool.targetsOf(parsed.data) : {};
  if (named === undefined) return RUNS;
  const asks = policy === "all" || tool.annotations.destructiveHint === true || tool.changesManyTasks?.(parsed.data) === true;
  const taskIds = named.taskIds ?? [];
  return asks ? { asks, taskIds, targets: [...taskIds, ...(named.turnIds ?? [])] } : RUNS;
}

/** Which of `ids` (raw task and turn ids) are the user's own. */
export async function ownedTargets(db: DbClient, userId: string, ids: readonly string[]): Promise<Set<string>> {
  if (ids.length === 0) return new Set();
  const [tasks, turns] = await Promise.all([findOwnedTasks(db, userId, ids), findOwnedTurns(db, userId, ids)]);
  return new Set([...tasks.map((task) => task.id), ...turns.map((turn) => turn.id)]);
}

/** reviewCall for a call as the model sent it (JSON-encoded arguments). */
export function reviewStoredCall(policy: ApprovalPolicy, call: StoredToolCall): CallReview {
  const parsed = parseArguments(call.function.arguments);
  return parsed.ok ? reviewCall(policy, call.function.name, parsed.value) : RUNS;
}

/**
 * What binds a decision to the call it was shown for: sha256 of the tool's
 * name and its arguments in canonical form (key order does not matter).
 */
export function argumentsHash(call: StoredToolCall): string {
  return createHash("sha256").update(callSignature(call), "utf8").digest("hex");
}
