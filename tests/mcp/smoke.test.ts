import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { newUser, startTestServer, type TestServer } from "../helpers/server.js";

describe("MCP over Streamable HTTP", () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer();
  });
  afterAll(async () => {
    await server.close();
  });

  it("should list the tools and add a task", async () => {
    const user = await newUser(server);
    const client = new Client({ name: "test", version: "1.0.0" });
    await client.connect(
      new StreamableHTTPClientTransport(new URL(`${server.baseUrl}/mcp`), {
        requestInit: { headers: { authorization: `Bearer ${user.token}` } },
      }),
    );
    const { tools } = await client.listTools();
    expect(tools.map((tool) => tool.name)).toEqual(["add_task", "list_tasks", "complete_task", "delete_task", "update_task"]);
    const result = await client.callTool({ name: "add_task", arguments: { title: "From MCP" } });
    expect(result.isError).toBeFalsy();
    expect(result.structuredContent).toMatchObject({ title: "From MCP", completed: false });
    await client.close();
  });
});
