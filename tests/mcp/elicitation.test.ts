import { fileURLToPath } from "node:url";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { ElicitRequestSchema, type ElicitResult, type Tool } from "@modelcontextprotocol/sdk/types.js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseId, toGlobalId } from "../../src/lib/ids.js";
import { databaseUrl, newUserId } from "../helpers/db.js";
import { newUser, startTestServer, type TestServer, type TestUser } from "../helpers/server.js";
import { TEST_JWT_SECRET } from "../helpers/tokens.js";
import { callError, callOk, type McpTask } from "./support.js";

/**
 * MCP's approval (issue 24): a client that declares elicitation is asked,
 * through it, before a destructive call runs; its answer decides. The stdio
 * server (`npm run mcp`, a real child process) knows its client's
 * capabilities; a client without elicitation runs calls as before.
 */

const ROOT = fileURLToPath(new URL("../..", import.meta.url));

interface Asked {
  message: string;
}

describe("MCP elicitation before a destructive call", () => {
  let server: TestServer;
  let user: TestUser;
  let client: Client;
  let tools: Tool[];
  const asked: Asked[] = [];
  let answer: ElicitResult["action"] = "accept";

  beforeAll(async () => {
    server = await startTestServer();
    user = await newUser(server, "mcp-elicit");
    const env: Record<string, string> = {};
    for (const [key, value] of Object.entries(process.env))
      if (value !== undefined && !key.startsWith("AUTH_") && !key.startsWith("DATABASE_")) env[key] = value;
    Object.assign(env, { DATABASE_URL: databaseUrl(), AUTH_JWT_SECRET: TEST_JWT_SECRET, MCP_AUTH_TOKEN: user.token, LOG_LEVEL: "warn" });
    const transport = new StdioClientTransport({
      command: process.execPath,
      args: ["--import", "tsx", "src/boot/mcp-stdio.ts"],
      cwd: ROOT,
      env,
      stderr: "pipe",
    });
    client = new Client({ name: "mcp-elicit-test", version: "1.0.0" }, { capabilities: { elicitation: {} } });
    client.setRequestHandler(ElicitRequestSchema, (request) => {
      asked.push({ message: request.params.message });
      return answer === "accept" ? { action: "accept", content: {} } : { action: answer };
    });
    await client.connect(transport);
    ({ tools } = await client.listTools());
  });
  afterAll(async () => {
    await client?.close();
    await server?.close();
  });

  async function task(title: string): Promise<McpTask> {
    return callOk<McpTask>(client, tools, "add_task", { title });
  }

  it("should ask before delete_task, naming the task, and delete it on accept", async () => {
    const doomed = await task("Renew passport");
    asked.length = 0;
    answer = "accept";
    const result = await callOk<{ deleted: McpTask }>(client, tools, "delete_task", { task_id: doomed.id });
    expect(result.deleted.id).toBe(doomed.id);
    expect(asked).toEqual([{ message: "Delete the task “Renew passport”? This cannot be undone." }]);
    expect(await server.db.task.findUnique({ where: { id: parseId(doomed.id, "id", "Task") } })).toBeNull();
  });

  it.each<ElicitResult["action"]>(["decline", "cancel"])("should not delete when the user answers %s, and say so", async (action) => {
    const kept = await task(`Kept after ${action}`);
    asked.length = 0;
    answer = action;
    const error = await callError(client, "delete_task", { task_id: kept.id });
    expect(error).toBe(action === "decline" ? "Not run: the user declined." : "Not run: the user dismissed the question.");
    expect(asked).toHaveLength(1);
    expect(await server.db.task.findUnique({ where: { id: parseId(kept.id, "id", "Task") } })).not.toBeNull();
  });

  it("should ask nothing for calls that are not destructive, or that name a task the user does not have", async () => {
    const mine = await task("Not destructive");
    const foreign = await server.db.task.create({ data: { userId: newUserId("mcp-elicit-other"), title: "Someone else's" } });
    asked.length = 0;
    answer = "decline";
    await callOk(client, tools, "complete_task", { task_id: mine.id });
    await callOk(client, tools, "update_task", { task_id: mine.id, title: "Renamed" });
    expect(await callError(client, "delete_task", { task_id: toGlobalId("Task", foreign.id) })).toBe(
      "Task not found. List the tasks to get valid ids.",
    );
    expect(await callError(client, "delete_task", { task_id: "garbage" })).toMatch(/^task_id "garbage" is not a task id/);
    expect(asked).toEqual([]);
    expect(await server.db.task.findUniqueOrThrow({ where: { id: foreign.id } })).toEqual(foreign);
  });

  it("should run a destructive call as before for a client without elicitation, and over the stateless HTTP endpoint", async () => {
    const plain = new Client({ name: "mcp-plain", version: "1.0.0" });
    const http = new Client({ name: "mcp-http-elicit", version: "1.0.0" }, { capabilities: { elicitation: {} } });
    let httpAsked = 0;
    http.setRequestHandler(ElicitRequestSchema, () => {
      httpAsked += 1;
      return { action: "decline" };
    });
    const transport = () =>
      new StreamableHTTPClientTransport(new URL(`${server.baseUrl}/mcp`), { requestInit: { headers: { authorization: `Bearer ${user.token}` } } });
    await plain.connect(transport());
    await http.connect(transport());
    try {
      for (const each of [plain, http]) {
        const gone = await task("Deleted without a question");
        asked.length = 0;
        expect((await callOk<{ deleted: McpTask }>(each, tools, "delete_task", { task_id: gone.id })).deleted.id).toBe(gone.id);
        expect(asked).toEqual([]);
      }
      // A tools/call over stateless HTTP carries nothing of the client's initialize: the server cannot know it could ask.
      expect(httpAsked).toBe(0);
    } finally {
      await plain.close();
      await http.close();
    }
  });
});
