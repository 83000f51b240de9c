import type { IncomingMessage, ServerResponse } from "node:http";
import { StreamableHTTPServerTransport } from "@modelcontextprotocol/sdk/server/streamableHttp.js";
import { bearerToken, type TokenVerifier } from "../auth.js";
import type { Db } from "../db/client.js";
import { AppError } from "../errors.js";
import type { Logger } from "../logger.js";
import { createMcpServer } from "./server.js";

export const MCP_PATH = "/mcp";

const MAX_BODY_BYTES = 1024 * 1024;

function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  res.writeHead(status, { "content-type": "application/json", ...headers }).end(JSON.stringify(body));
}

async function readJson(req: IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > MAX_BODY_BYTES) throw new Error("body too large");
    chunks.push(chunk as Buffer);
  }
  return JSON.parse(Buffer.concat(chunks).toString("utf8"));
}

/**
 * MCP's Streamable HTTP transport at /mcp, stateless: every POST carries its
 * own Bearer JWT and gets a fresh server and transport, so any instance can
 * answer any request. No token, or a bad one, is a 401.
 */
export function createMcpHandler(options: { db: Db; verifier: TokenVerifier; logger: Logger }) {
  return async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    let userId: string;
    try {
      userId = (await options.verifier.verify(bearerToken(req.headers.authorization))).userId;
    } catch (error) {
      const message = error instanceof AppError ? error.message : "Unauthorized";
      sendJson(res, 401, { jsonrpc: "2.0", error: { code: -32001, message }, id: null }, { "www-authenticate": 'Bearer realm="mcp"' });
      return;
    }
    if (req.method !== "POST") {
      // Stateless: no server-initiated stream (GET) and no session to end (DELETE).
      sendJson(res, 405, { jsonrpc: "2.0", error: { code: -32000, message: "Method not allowed" }, id: null }, { allow: "POST" });
      return;
    }
    let body: unknown;
    try {
      body = await readJson(req);
    } catch {
      sendJson(res, 400, { jsonrpc: "2.0", error: { code: -32700, message: "Parse error: the body must be JSON" }, id: null });
      return;
    }
    const server = createMcpServer({ db: options.db, userId, logger: options.logger });
    const transport = new StreamableHTTPServerTransport({ sessionIdGenerator: undefined, enableJsonResponse: true });
    res.on("close", () => {
      void transport.close();
      void server.close();
    });
    try {
      await server.connect(transport);
      await transport.handleRequest(req, res, body);
    } catch (error) {
      options.logger.error({ err: error }, "MCP request failed");
      if (!res.headersSent) sendJson(res, 500, { jsonrpc: "2.0", error: { code: -32603, message: "Internal error" }, id: null });
    }
  };
}
