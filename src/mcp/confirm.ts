import type { Server } from "@modelcontextprotocol/sdk/server/index.js";
import { ownedTargets, reviewCall } from "../chat/approval-policy.js";
import { findTool } from "../chat/tools.js";
import type { DbClient } from "../db/client.js";
import { findOwnedTasks } from "../domain/tasks.js";
import type { Logger } from "../lib/logger.js";

/**
 * MCP's own approval: before a destructive call (the rule CHAT_APPROVAL's
 * "destructive" uses: delete_task, or a call that would change more than one
 * task), a server whose client declared elicitation asks the user through it.
 * A client without elicitation is its own agent: the call runs as it always
 * has. So does a call that names a task the user does not have (it answers
 * "not found", as it would have, and asks nothing about a task that is not
 * theirs).
 *
 * Over the stateless Streamable HTTP endpoint a tools/call request carries
 * nothing of the client's initialize (another request, maybe on another
 * instance), so the server cannot know it declared elicitation: calls there
 * run as today. Over stdio the session is one process, and the server asks.
 */

/** How long the user has to answer the question before the call is refused. */
const ELICITATION_TIMEOUT_MS = 10 * 60_000;

const VERBS: Record<string, string> = { delete_task: "Delete", delete_tasks: "Delete" };

/** What the user is asked: the tasks by title where the call names them, else the call itself. */
function question(name: string, args: unknown, titles: readonly string[]): string {
  if (titles.length === 0) return `Allow ${name} (${JSON.stringify(args)}) to change your tasks?`;
  const named = titles.map((title) => `“${title}”`).join(", ");
  const verb = VERBS[name];
  const subject = titles.length === 1 ? `the task ${named}` : `${titles.length} tasks: ${named}`;
  return verb ? `${verb} ${subject}? This cannot be undone.` : `Allow ${name} to change ${subject}?`;
}

export type Confirmation = { run: true } | { run: false; reason: string };

export async function confirmDestructive(
  server: Server,
  context: { db: DbClient; userId: string; logger: Logger },
  name: string,
  args: unknown,
): Promise<Confirmation> {
  if (!server.getClientCapabilities()?.elicitation?.form) return { run: true };
  const review = reviewCall("destructive", name, args);
  if (!review.asks) return { run: true };
  const owned = await ownedTargets(context.db, context.userId, review.targets);
  if (!review.targets.every((id) => owned.has(id))) return { run: true };
  const tool = findTool(name);
  const parsed = tool?.input.safeParse(args);
  const taskIds = tool?.tasksToTouch && parsed?.success ? await tool.tasksToTouch(context, parsed.data) : review.taskIds;
  const tasks = await findOwnedTasks(context.db, context.userId, taskIds);
  try {
    const message = question(
      name,
      args,
      tasks.map((task) => task.title),
    );
    const answer = await server.elicitInput(
      { mode: "form", message, requestedSchema: { type: "object", properties: {} } },
      { timeout: ELICITATION_TIMEOUT_MS },
    );
    if (answer.action === "accept") return { run: true };
    return { run: false, reason: `Not run: the user ${answer.action === "decline" ? "declined" : "dismissed the question"}.` };
  } catch (error) {
    context.logger.info({ err: error, tool: name }, "MCP elicitation failed; the call is not run");
    return { run: false, reason: "Not run: the user's confirmation could not be obtained." };
  }
}
