import { Server } from "@modelcontextprotocol/sdk/server/index.js";
import { userTimezone } from "../domain/user-settings.js";
import { memoized } from "../lib/memo.js";
import { Protocol } from "@modelcontextprotocol/sdk/shared/protocol.js";
import { ErrorCode as RpcErrorCode, ListToolsRequestSchema, McpError, type CallToolResult } from "@modelcontextprotocol/sdk/types.js";
import { inputJsonSchema, outputJsonSchema, runTool, TOOLS } from "../chat/tools.js";
import type { Db } from "../db/client.js";
import { MCP_CAUSE } from "../domain/provenance.js";
import type { Logger } from "../lib/logger.js";
import { confirmDestructive } from "./confirm.js";
import { ToolCallRequest, toolCallParams } from "./tool-call-params.js";

/**
 * The task tools as an MCP server. It is the chat assistant's registry, not a
 * copy: the same schemas, validation, ownership rules and domain functions, so
 * an MCP call persists exactly as a chat tool call does (and the same triggers
 * announce it to taskChanged subscribers). One server per authenticated user.
 * Before a destructive call it asks the user, where the client can (./confirm.ts).
 */
export function createMcpServer(options: { db: Db; userId: string; logger: Logger }): Server {
  const server = new Server(
    { name: "todo-assistant", version: "0.1.0" },
    {
      capabilities: { tools: {} },
      instructions: "Manage the authenticated user's todo list. Task ids are the ids that add_task and list_tasks return.",
    },
  );

  server.setRequestHandler(ListToolsRequestSchema, () => ({
    tools: TOOLS.map((tool) => ({
      name: tool.name,
      description: tool.description,
      inputSchema: inputJsonSchema(tool) as { type: "object" },
      outputSchema: outputJsonSchema(tool) as { type: "object" },
      annotations: { title: tool.name, ...tool.annotations },
    })),
  }));

  // Registered on the base class: Server's own tools/call wrapper checks the params with the
  // SDK's schema first and answers a bad one with zod's issue dump (see tool-call-params.ts).
  Protocol.prototype.setRequestHandler.call(server, ToolCallRequest, async (request): Promise<CallToolResult> => {
    const { name, arguments: args } = toolCallParams(request.params);
    let outcome;
    try {
      // Where the client can ask its user (elicitation), a destructive call waits for their yes.
      const confirmation = await confirmDestructive(server, options, name, args);
      if (!confirmation.run) return { isError: true, content: [{ type: "text", text: confirmation.reason }] };
      outcome = await runTool(
        {
          db: options.db,
          userId: options.userId,
          cause: MCP_CAUSE,
          atomically: (work) => options.db.$transaction(work),
          zone: memoized(() => userTimezone(options.db, options.userId)),
        },
        name,
        args,
      );
    } catch (error) {
      // Not the caller's fault (the database is down, a bug): the SDK would send the
      // error's own message, which names hosts, ports and source paths. Log it instead.
      options.logger.error({ err: error, tool: name }, "MCP tool call failed");
      throw new McpError(RpcErrorCode.InternalError, "Internal error");
    }
    if (!outcome.ok) {
      options.logger.info({ tool: name }, "MCP tool call rejected");
      return { isError: true, content: [{ type: "text", text: outcome.error }] };
    }
    return {
      content: [{ type: "text", text: JSON.stringify(outcome.result) }],
      structuredContent: outcome.result,
    };
  });

  return server;
}
