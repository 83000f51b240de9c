import { randomUUID } from "node:crypto";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { localIso } from "../../src/lib/zoned-time.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { LATEST_PROTOCOL_VERSION, type Tool } from "@modelcontextprotocol/sdk/types.js";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { parseId, toGlobalId } from "../../src/lib/ids.js";
import { newUser, startTestServer, type TestServer, type TestUser } from "../helpers/server.js";
import { tokenFor } from "../helpers/tokens.js";
import { wsClient, type TestWsClient } from "../helpers/ws-client.js";
import { callError, callOk, expectNextChange, expectToolCatalogue, nextChange, TASK_CHANGED, type McpTask } from "./support.js";

const NOT_FOUND = "Task not found. List the tasks to get valid ids.";

function dbId(globalId: string): string {
  return parseId(globalId, "id", "Task");
}

describe("MCP over Streamable HTTP", () => {
  let server: TestServer;
  const clients: Client[] = [];
  const wsClients: TestWsClient[] = [];

  beforeAll(async () => {
    server = await startTestServer();
  });
  afterAll(async () => {
    await Promise.all(clients.map((client) => client.close()));
    await Promise.all(wsClients.map((client) => client.dispose()));
    await server.close();
  });

  function transportFor(token: string | undefined): StreamableHTTPClientTransport {
    return new StreamableHTTPClientTransport(new URL(`${server.baseUrl}/mcp`), {
      requestInit: token === undefined ? {} : { headers: { authorization: `Bearer ${token}` } },
    });
  }

  /** An initialized SDK client for the user, and the tools it listed (the client validates results against them). */
  async function connect(user: TestUser): Promise<{ client: Client; tools: Tool[] }> {
    const client = new Client({ name: "mcp-http-test", version: "1.0.0" });
    clients.push(client);
    await client.connect(transportFor(user.token));
    const { tools } = await client.listTools();
    return { client, tools };
  }

  function rowsOf(userId: string) {
    return server.db.task.findMany({ where: { userId }, orderBy: [{ createdAt: "asc" }, { id: "asc" }] });
  }

  describe("tools/list", () => {
    it("should list exactly the five task tools with input and output schemas and annotations", async () => {
      const { tools } = await connect(await newUser(server, "mcp-list"));
      expectToolCatalogue(tools);
    });

    it("should announce the tools capability and the server's name on initialize", async () => {
      const { client } = await connect(await newUser(server, "mcp-init"));
      expect(client.getServerCapabilities()?.tools).toBeDefined();
      expect(client.getServerVersion()?.name).toBe("todo-assistant");
    });
  });

  describe("tools/call", () => {
    it("should add a task owned by the token's subject", async () => {
      const user = await newUser(server, "mcp-add");
      const { client, tools } = await connect(user);
      const added = await callOk<McpTask>(client, tools, "add_task", { title: "  Buy milk  ", description: "Two litres" });
      expect(added).toEqual({
        id: expect.any(String),
        title: "Buy milk",
        description: "Two litres",
        completed: false,
        created_at: expect.any(String),
        due: null,
        priority: "none",
        labels: [],
        completed_at: null,
        recurrence: null,
      });
      const rows = await rowsOf(user.id);
      expect(rows).toHaveLength(1);
      const [row] = rows;
      expect(row).toMatchObject({ id: dbId(added.id), userId: user.id, title: "Buy milk", description: "Two litres", completed: false });
      expect(added.id).toBe(toGlobalId("Task", row!.id));
      expect(added.created_at).toBe(localIso(row!.createdAt.getTime(), "UTC"));
    });

    it("should keep the task the caller's when the arguments name another user", async () => {
      const user = await newUser(server, "mcp-owner");
      const other = await newUser(server, "mcp-owner-other");
      const { client, tools } = await connect(user);
      const added = await callOk<McpTask>(client, tools, "add_task", { title: "Mine", user_id: other.id, userId: other.id });
      expect(await server.db.task.findUnique({ where: { id: dbId(added.id) } })).toMatchObject({ userId: user.id });
      expect(await rowsOf(other.id)).toEqual([]);
    });

    it("should list all, pending and completed tasks newest first", async () => {
      const user = await newUser(server, "mcp-status");
      const { client, tools } = await connect(user);
      // Another user's task must never show up.
      const stranger = await newUser(server, "mcp-status-stranger");
      await server.db.task.create({ data: { userId: stranger.id, title: "Not yours" } });

      const empty = await callOk(client, tools, "list_tasks", {});
      expect(empty).toEqual({ tasks: [], count: 0, truncated: false });

      const first = await callOk<McpTask>(client, tools, "add_task", { title: "First" });
      const second = await callOk<McpTask>(client, tools, "add_task", { title: "Second" });
      const third = await callOk<McpTask>(client, tools, "add_task", { title: "Third" });
      await server.db.task.update({ where: { id: dbId(second.id) }, data: { completed: true } });

      const all = await callOk<{ tasks: McpTask[]; count: number; truncated: boolean }>(client, tools, "list_tasks", { status: "all" });
      const defaulted = await callOk(client, tools, "list_tasks", {});
      const pending = await callOk<{ tasks: McpTask[]; count: number }>(client, tools, "list_tasks", { status: "pending" });
      const completed = await callOk<{ tasks: McpTask[]; count: number }>(client, tools, "list_tasks", { status: "completed" });

      // Newest first, as the database orders them.
      const rows = await server.db.task.findMany({ where: { userId: user.id }, orderBy: [{ createdAt: "desc" }, { id: "desc" }] });
      expect(all.tasks.map((task) => task.id)).toEqual(rows.map((row) => toGlobalId("Task", row.id)));
      expect(new Set(all.tasks.map((task) => task.id))).toEqual(new Set([first.id, second.id, third.id]));
      expect(all).toMatchObject({ count: 3, truncated: false });
      expect(defaulted).toEqual(all);
      expect(all.tasks.find((task) => task.id === second.id)).toMatchObject({ title: "Second", completed: true });

      expect(pending.count).toBe(2);
      expect(new Set(pending.tasks.map((task) => task.id))).toEqual(new Set([first.id, third.id]));
      expect(pending.tasks.every((task) => !task.completed)).toBe(true);
      expect(completed).toEqual({ tasks: [{ ...second, completed: true }], count: 1, truncated: false });
    });

    it("should complete a task, and completing it again should change nothing", async () => {
      const user = await newUser(server, "mcp-complete");
      const { client, tools } = await connect(user);
      const added = await callOk<McpTask>(client, tools, "add_task", { title: "Finish me" });
      const done = await callOk<McpTask>(client, tools, "complete_task", { task_id: added.id });
      expect(done).toEqual({ ...added, completed: true, completed_at: expect.any(String) });
      const row = await server.db.task.findUniqueOrThrow({ where: { id: dbId(added.id) } });
      expect(row).toMatchObject({ userId: user.id, title: "Finish me", completed: true });

      const again = await callOk<McpTask>(client, tools, "complete_task", { task_id: added.id });
      expect(again).toEqual(done);
      expect(await server.db.task.findUniqueOrThrow({ where: { id: dbId(added.id) } })).toMatchObject({ completed: true });
    });

    it("should move a recurring task to its next occurrence when complete_task is called over MCP", async () => {
      const user = await newUser(server, "mcp-recurring");
      const { client, tools } = await connect(user);
      const added = await callOk<McpTask>(client, tools, "add_task", {
        title: "Stand-up",
        due: "2026-06-01T09:00",
        recurrence: "FREQ=DAILY;COUNT=2",
      });
      expect(added).toMatchObject({ due: "2026-06-01T09:00:00+00:00", recurrence: "FREQ=DAILY;COUNT=2" });
      const moved = await callOk<McpTask>(client, tools, "complete_task", { task_id: added.id });
      expect(moved).toMatchObject({
        completed: false,
        due: "2026-06-02T09:00:00+00:00",
        recurrence: "FREQ=DAILY;COUNT=1",
        completed_at: expect.any(String),
      });
      const done = await callOk<McpTask>(client, tools, "complete_task", { task_id: added.id });
      expect(done).toMatchObject({ completed: true, due: "2026-06-02T09:00:00+00:00" });
      const events = await server.db.taskEvent.findMany({ where: { userId: user.id, taskId: dbId(added.id) } });
      expect(events.map((event) => event.actor)).toEqual(["MCP", "MCP", "MCP"]);
    });

    it("should update a task's title and description, and clear the description with an empty string", async () => {
      const user = await newUser(server, "mcp-update");
      const { client, tools } = await connect(user);
      const added = await callOk<McpTask>(client, tools, "add_task", { title: "Draft", description: "Old notes" });

      const renamed = await callOk<McpTask>(client, tools, "update_task", { task_id: added.id, title: "Final", description: "New notes" });
      expect(renamed).toEqual({ ...added, title: "Final", description: "New notes" });
      expect(await server.db.task.findUniqueOrThrow({ where: { id: dbId(added.id) } })).toMatchObject({
        title: "Final",
        description: "New notes",
        completed: false,
      });

      const titleOnly = await callOk<McpTask>(client, tools, "update_task", { task_id: added.id, title: "Final v2" });
      expect(titleOnly).toMatchObject({ title: "Final v2", description: "New notes" });

      const cleared = await callOk<McpTask>(client, tools, "update_task", { task_id: added.id, description: "" });
      expect(cleared).toEqual({ ...added, title: "Final v2", description: null });
      expect(await server.db.task.findUniqueOrThrow({ where: { id: dbId(added.id) } })).toMatchObject({
        title: "Final v2",
        description: null,
      });
    });

    it("should read a due time without an offset in the user's zone, through the same tools as the chat", async () => {
      const user = await newUser(server, "mcp-local-due");
      expect((await user.gql(`mutation { updateViewer(input: { timezone: "Europe/Berlin" }) { timezone } }`)).errors).toBeUndefined();
      const { client, tools } = await connect(user);

      const added = await callOk<McpTask>(client, tools, "add_task", { title: "Standup", due: "2026-12-08T17:00:00" });
      expect(added).toMatchObject({ title: "Standup", due: "2026-12-08T17:00:00+01:00" });
      const moved = await callOk<McpTask>(client, tools, "update_task", { task_id: added.id, due: "2026-07-08T09:30:00" });
      // Summer time then (CEST, UTC+2).
      expect(moved).toMatchObject({ due: "2026-07-08T09:30:00+02:00" });
      expect((await rowsOf(user.id)).map((row) => row.dueAt?.toISOString())).toEqual(["2026-07-08T07:30:00.000Z"]);
      expect(await callError(client, "search_tasks", { due_after: "2026-12-08T17:00:00" })).toContain("due_after: needs an offset, e.g. Z or +01:00");
    });

    it("should delete a task and return it as { deleted }", async () => {
      const user = await newUser(server, "mcp-delete");
      const { client, tools } = await connect(user);
      const keep = await callOk<McpTask>(client, tools, "add_task", { title: "Keep" });
      const doomed = await callOk<McpTask>(client, tools, "add_task", { title: "Doomed", description: "bye" });

      const result = await callOk(client, tools, "delete_task", { task_id: doomed.id });
      expect(result).toEqual({ deleted: doomed });
      expect(await server.db.task.findUnique({ where: { id: dbId(doomed.id) } })).toBeNull();
      expect((await rowsOf(user.id)).map((row) => toGlobalId("Task", row.id))).toEqual([keep.id]);

      // Deleting is not idempotent: the second call finds nothing.
      expect(await callError(client, "delete_task", { task_id: doomed.id })).toBe(NOT_FOUND);
      expect(await rowsOf(user.id)).toHaveLength(1);
    });
  });

  describe("bad arguments", () => {
    it("should reject add_task without a title and write nothing", async () => {
      const user = await newUser(server, "mcp-no-title");
      const { client } = await connect(user);
      expect(await callError(client, "add_task", {})).toMatch(/^Invalid arguments for add_task: title: /);
      expect(await callError(client, "add_task", { description: "no title" })).toMatch(/^Invalid arguments for add_task: title: /);
      expect(await callError(client, "add_task", { title: "   " })).toBe("Invalid arguments for add_task: title: title must not be empty");
      expect(await rowsOf(user.id)).toEqual([]);
    });

    it("should reject a 201-character title and write nothing, but take 200", async () => {
      const user = await newUser(server, "mcp-long-title");
      const { client, tools } = await connect(user);
      expect(await callError(client, "add_task", { title: "x".repeat(201) })).toBe(
        "Invalid arguments for add_task: title: title must be at most 200 characters",
      );
      expect(await rowsOf(user.id)).toEqual([]);

      const added = await callOk<McpTask>(client, tools, "add_task", { title: "y".repeat(200) });
      expect(await callError(client, "update_task", { task_id: added.id, title: "z".repeat(201) })).toBe(
        "Invalid arguments for update_task: title: title must be at most 200 characters",
      );
      const rows = await rowsOf(user.id);
      expect(rows).toHaveLength(1);
      expect(rows[0]?.title).toBe("y".repeat(200));
    });

    it("should reject a task_id that is not a task id and change nothing", async () => {
      const user = await newUser(server, "mcp-garbage-id");
      const { client, tools } = await connect(user);
      const added = await callOk<McpTask>(client, tools, "add_task", { title: "Untouched" });
      const before = await rowsOf(user.id);
      const conversationId = toGlobalId("Conversation", randomUUID());
      for (const name of ["complete_task", "update_task", "delete_task"]) {
        for (const garbage of ["not-an-id", conversationId]) {
          expect(await callError(client, name, { task_id: garbage, title: "Changed" })).toBe(
            `task_id "${garbage}" is not a task id; use an id that add_task or list_tasks returned`,
          );
        }
        expect(await callError(client, name, { task_id: "" })).toMatch(new RegExp(`^Invalid arguments for ${name}: task_id: `));
        expect(await callError(client, name, { title: "no id" })).toMatch(new RegExp(`^Invalid arguments for ${name}: task_id: `));
      }
      expect(await callError(client, "list_tasks", { status: "done" })).toMatch(/^Invalid arguments for list_tasks: status: /);
      expect(await rowsOf(user.id)).toEqual(before);
      expect(before.map((row) => toGlobalId("Task", row.id))).toEqual([added.id]);
    });

    it("should answer an unknown tool with an error result that names the available tools", async () => {
      const user = await newUser(server, "mcp-unknown");
      const { client } = await connect(user);
      expect(await callError(client, "drop_database", { title: "x" })).toBe(
        'Unknown tool "drop_database". Available tools: add_task, list_tasks, complete_task, delete_task, update_task, search_tasks, complete_tasks, delete_tasks, undo_turn.',
      );
      expect(await rowsOf(user.id)).toEqual([]);
    });

    it("should report another user's task as not found and leave it unchanged", async () => {
      const owner = await newUser(server, "mcp-victim");
      const attacker = await newUser(server, "mcp-attacker");
      const ownerClient = await connect(owner);
      const attackerClient = await connect(attacker);
      const victim = await callOk<McpTask>(ownerClient.client, ownerClient.tools, "add_task", { title: "Private", description: "secret" });
      const before = await server.db.task.findUniqueOrThrow({ where: { id: dbId(victim.id) } });

      expect(await callError(attackerClient.client, "complete_task", { task_id: victim.id })).toBe(NOT_FOUND);
      expect(await callError(attackerClient.client, "update_task", { task_id: victim.id, title: "Pwned", description: "" })).toBe(NOT_FOUND);
      expect(await callError(attackerClient.client, "delete_task", { task_id: victim.id })).toBe(NOT_FOUND);
      // Indistinguishable from a task that never existed.
      expect(await callError(attackerClient.client, "delete_task", { task_id: toGlobalId("Task", randomUUID()) })).toBe(NOT_FOUND);
      const listed = await callOk<{ tasks: McpTask[] }>(attackerClient.client, attackerClient.tools, "list_tasks", {});
      expect(listed.tasks).toEqual([]);

      expect(await server.db.task.findUniqueOrThrow({ where: { id: dbId(victim.id) } })).toEqual(before);
      expect(await rowsOf(attacker.id)).toEqual([]);
    });
  });

  describe("malformed input", () => {
    it("should refuse a lone surrogate in an argument that is stored, naming the field, and write nothing", async () => {
      const user = await newUser(server, "mcp-surrogate");
      const { client, tools } = await connect(user);
      const WELL_FORMED = /^(title|description): must be well-formed Unicode/;
      expect(await callError(client, "add_task", { title: "a\uD800b" })).toMatch(/^title: must be well-formed Unicode/);
      expect(await callError(client, "add_task", { title: "ok", description: "\uDC00" })).toMatch(/^description: must be well-formed Unicode/);
      expect(await rowsOf(user.id)).toEqual([]);

      const added = await callOk<McpTask>(client, tools, "add_task", { title: "Kept as it is" });
      expect(await callError(client, "update_task", { task_id: added.id, title: "x\uDBFFy" })).toMatch(WELL_FORMED);
      expect(await rowsOf(user.id)).toMatchObject([{ title: "Kept as it is", description: null }]);
    });

    /** A raw JSON-RPC tools/call over HTTP, as a client that skips the SDK would send it. */
    async function rawToolCall(token: string, params: unknown): Promise<{ status: number; body: Record<string, any> }> {
      const response = await fetch(`${server.baseUrl}/mcp`, {
        method: "POST",
        headers: { "content-type": "application/json", accept: "application/json, text/event-stream", authorization: `Bearer ${token}` },
        body: JSON.stringify({ jsonrpc: "2.0", id: 7, method: "tools/call", params }),
      });
      return { status: response.status, body: (await response.json()) as Record<string, any> };
    }

    const malformed: { name: string; params: unknown; message: string }[] = [
      { name: "null arguments", params: { name: "add_task", arguments: null }, message: "arguments must be an object (got null)" },
      { name: "string arguments", params: { name: "add_task", arguments: "title=x" }, message: "arguments must be an object (got a string)" },
      { name: "array arguments", params: { name: "add_task", arguments: [{ title: "x" }] }, message: "arguments must be an object (got an array)" },
      { name: "number arguments", params: { name: "list_tasks", arguments: 42 }, message: "arguments must be an object (got a number)" },
      { name: "no tool name", params: { arguments: { title: "x" } }, message: "name must be a string (got nothing)" },
    ];

    it.each(malformed)(
      "should answer a tools/call with $name as -32602 invalid params in one line, and write nothing",
      async ({ params, message }) => {
        const user = await newUser(server, "mcp-malformed");
        const { status, body } = await rawToolCall(user.token, params);
        expect(status).toBe(200);
        expect(body).toEqual({ jsonrpc: "2.0", id: 7, error: { code: -32602, message: `Invalid tools/call params: ${message}` } });
        expect(await rowsOf(user.id)).toEqual([]);
      },
    );

    it("should still take a tools/call without arguments as no arguments", async () => {
      const user = await newUser(server, "mcp-no-arguments");
      const { body } = await rawToolCall(user.token, { name: "list_tasks" });
      expect(body.result?.structuredContent).toEqual({ tasks: [], count: 0, truncated: false });
    });
  });

  describe("authentication", () => {
    const initializeBody = JSON.stringify({
      jsonrpc: "2.0",
      id: 1,
      method: "initialize",
      params: { protocolVersion: LATEST_PROTOCOL_VERSION, capabilities: {}, clientInfo: { name: "raw", version: "1.0.0" } },
    });

    function postInitialize(authorization: string | undefined): Promise<Response> {
      const headers: Record<string, string> = { "content-type": "application/json", accept: "application/json, text/event-stream" };
      if (authorization !== undefined) headers.authorization = authorization;
      return fetch(`${server.baseUrl}/mcp`, { method: "POST", headers, body: initializeBody });
    }

    const cases: { name: string; authorization: (userId: string) => Promise<string | undefined>; message: RegExp }[] = [
      { name: "no token", authorization: async () => undefined, message: /^Missing Authorization header/ },
      { name: "a non-Bearer header", authorization: async (id) => `Basic ${Buffer.from(`${id}:pw`).toString("base64")}`, message: /Bearer <JWT>/ },
      { name: "a malformed token", authorization: async () => "Bearer not.a.jwt", message: /^The token is malformed$/ },
      {
        name: "a token signed with another secret",
        authorization: async (id) => `Bearer ${await tokenFor(id, { secret: `other-${randomUUID()}-${randomUUID()}` })}`,
        message: /^The token's signature is invalid$/,
      },
      {
        name: "an expired token",
        authorization: async (id) => `Bearer ${await tokenFor(id, { expiresIn: Math.floor(Date.now() / 1000) - 60 })}`,
        message: /^The token has expired$/,
      },
    ];

    it.each(cases)("should answer an initialize POST with $name with 401 and write nothing", async ({ authorization, message }) => {
      const userId = `mcp-unauth-${randomUUID()}`;
      const response = await postInitialize(await authorization(userId));
      expect(response.status).toBe(401);
      expect(response.headers.get("www-authenticate")).toMatch(/^Bearer /);
      const body = (await response.json()) as { jsonrpc: string; error: { code: number; message: string }; id: unknown };
      expect(body).toMatchObject({ jsonrpc: "2.0", id: null, error: { code: -32001 } });
      expect(body.error.message).toMatch(message);
      expect(await rowsOf(userId)).toEqual([]);
    });

    it.each(cases)("should fail the SDK client's connect with $name", async ({ authorization }) => {
      const header = await authorization(`mcp-unauth-${randomUUID()}`);
      const client = new Client({ name: "mcp-http-test", version: "1.0.0" });
      clients.push(client);
      const transport = new StreamableHTTPClientTransport(new URL(`${server.baseUrl}/mcp`), {
        requestInit: header === undefined ? {} : { headers: { authorization: header } },
      });
      await expect(client.connect(transport)).rejects.toMatchObject({ code: 401 });
    });

    it("should answer the same initialize POST with a valid token", async () => {
      const user = await newUser(server, "mcp-auth-ok");
      const response = await postInitialize(`Bearer ${user.token}`);
      expect(response.status).toBe(200);
      const body = (await response.json()) as { id: number; result: { serverInfo: { name: string }; capabilities: Record<string, unknown> } };
      expect(body.id).toBe(1);
      expect(body.result.serverInfo.name).toBe("todo-assistant");
      expect(body.result.capabilities.tools).toBeDefined();
    });

    it("should act as the subject of each request's own token", async () => {
      // Stateless: the token is read per request, so two users never share a server.
      const first = await newUser(server, "mcp-per-request-a");
      const second = await newUser(server, "mcp-per-request-b");
      const a = await connect(first);
      const b = await connect(second);
      const fromA = await callOk<McpTask>(a.client, a.tools, "add_task", { title: "A's" });
      const fromB = await callOk<McpTask>(b.client, b.tools, "add_task", { title: "B's" });
      expect((await rowsOf(first.id)).map((row) => toGlobalId("Task", row.id))).toEqual([fromA.id]);
      expect((await rowsOf(second.id)).map((row) => toGlobalId("Task", row.id))).toEqual([fromB.id]);
    });
  });

  describe("realtime", () => {
    it("should push CREATED, UPDATED and DELETED to a taskChanged subscriber for changes made through MCP", async () => {
      const user = await newUser(server, "mcp-realtime");
      const { client, tools } = await connect(user);
      const ws = wsClient(server.wsUrl, user.token);
      wsClients.push(ws);
      const before = server.app.realtime.establishedCount;
      const sub = ws.subscribe(TASK_CHANGED);
      await vi.waitFor(() => expect(server.app.realtime.establishedCount, "established subscriptions").toBeGreaterThan(before), {
        timeout: 10_000,
        interval: 10,
      });

      const added = await callOk<McpTask>(client, tools, "add_task", { title: "Live", description: "via MCP" });
      await expectNextChange(sub, "CREATED", { id: added.id, title: "Live", description: "via MCP", completed: false });

      await callOk(client, tools, "complete_task", { task_id: added.id });
      await expectNextChange(sub, "UPDATED", { id: added.id, title: "Live", description: "via MCP", completed: true });

      await callOk(client, tools, "update_task", { task_id: added.id, title: "Live, renamed" });
      await expectNextChange(sub, "UPDATED", { id: added.id, title: "Live, renamed", description: "via MCP", completed: true });

      await callOk(client, tools, "delete_task", { task_id: added.id });
      await expectNextChange(sub, "DELETED", { id: added.id, title: "Live, renamed", description: "via MCP", completed: true });
      // A read publishes nothing: the next event is the next write's.
      await callOk(client, tools, "list_tasks", {});
      const next = await callOk<McpTask>(client, tools, "add_task", { title: "After the read" });
      expect(await nextChange(sub)).toMatchObject({ kind: "CREATED", taskId: next.id });
      sub.dispose();
    });
  });
});
