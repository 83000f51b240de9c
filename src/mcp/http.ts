import { bearerToken, type TokenVerifier } from "../auth/verifier.js";
import type { Db } from "../db/client.js";
import { AppError } from "../lib/errors.js";
import { BodyError, readJsonBody } from "../lib/http-body.js";
import type { Logger } from "../lib/logger.js";

export const MCP_PATH = "/mcp";

type McpModules = [typeof import("@modelcontextprotocol/sdk/server/webStandardStreamableHttp.js"), typeof import("./server.js")];
let loading: Promise<McpModules> | undefined;

/** The MCP SDK, loaded by the first /mcp request: a start of the server does not need it. */
function loadMcp(): Promise<McpModules> {
  loading ??= Promise.all([import("@modelcontextprotocol/sdk/server/webStandardStreamableHttp.js"), import("./server.js")]);
  loading.catch(() => (loading = undefined));
  return loading;
}

function rpcError(status: number, code: number, message: string, headers: Record<string, string> = {}): Response {
  return Response.json({ jsonrpc: "2.0", error: { code, message }, id: null }, { status, headers });
}

/**
 * MCP's Streamable HTTP transport at /mcp, stateless: every POST carries its
 * own Bearer JWT and gets a fresh server and transport, so any instance can
 * answer any request. No token, or a bad one, is a 401, before the body is read.
 */
export function createMcpHandler(options: { db: Db; verifier: TokenVerifier; logger: Logger; maxBodyBytes: number }) {
  return async (request: Request): Promise<Response> => {
    let userId: string;
    try {
      userId = (await options.verifier.verify(bearerToken(request.headers.get("authorization")))).userId;
    } catch (error) {
      const message = error instanceof AppError ? error.message : "Unauthorized";
      return rpcError(401, -32001, message, { "www-authenticate": 'Bearer realm="mcp"' });
    }
    if (request.method !== "POST") {
      // Stateless: no server-initiated stream (GET) and no session to end (DELETE).
      return rpcError(405, -32000, "Method not allowed", { allow: "POST" });
    }
    let body: unknown;
    try {
      body = await readJsonBody(request, options.maxBodyBytes);
    } catch (error) {
      if (!(error instanceof BodyError)) throw error;
      return rpcError(error.status, -32700, `Parse error: ${error.message}`);
    }
    const [{ WebStandardStreamableHTTPServerTransport }, { createMcpServer }] = await loadMcp();
    const server = createMcpServer({ db: options.db, userId, logger: options.logger });
    const transport = new WebStandardStreamableHTTPServerTransport({ sessionIdGenerator: undefined, enableJsonResponse: true });
    await server.connect(transport);
    try {
      return await transport.handleRequest(request, { parsedBody: body });
    } finally {
      // JSON responses are complete here; nothing outlives the request.
      void transport.close();
      void server.close();
    }
  };
}
