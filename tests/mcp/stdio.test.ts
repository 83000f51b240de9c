import { spawn, type ChildProcessWithoutNullStreams } from "node:child_process";
import { randomUUID } from "node:crypto";
import { localIso } from "../../src/lib/zoned-time.js";
import { fileURLToPath } from "node:url";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import { LATEST_PROTOCOL_VERSION, type Tool } from "@modelcontextprotocol/sdk/types.js";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { parseId, toGlobalId } from "../../src/lib/ids.js";
import { databaseUrl, newUserId } from "../helpers/db.js";
import { ensureBuilt } from "../helpers/process.js";
import { newUser, startTestServer, type TestServer, type TestUser } from "../helpers/server.js";
import { TEST_JWT_SECRET, tokenFor } from "../helpers/tokens.js";
import { wsClient, type TestWsClient } from "../helpers/ws-client.js";
import { callError, callOk, expectNextChange, expectToolCatalogue, TASK_CHANGED, type McpTask } from "./support.js";

/** `npm run mcp`, as a child process of the test: the built entry (dist/, see ensureBuilt) on this Node. */
const ROOT = fileURLToPath(new URL("../..", import.meta.url));
const COMMAND = process.execPath;
const ARGS = ["dist/boot/mcp-stdio.js"];

/** Settings the stdio server reads; the test's own environment must not leak any of them in. */
const SERVER_SETTINGS = [
  "DATABASE_URL",
  "DIRECT_URL",
  "DATABASE_DRIVER",
  "AUTH_JWT_SECRET",
  "AUTH_JWKS_URL",
  "AUTH_JWT_ISSUER",
  "AUTH_JWT_AUDIENCE",
  "MCP_AUTH_TOKEN",
  "LOG_LEVEL",
];

function childEnv(settings: Record<string, string | undefined>): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [key, value] of Object.entries(process.env)) {
    if (value !== undefined && !SERVER_SETTINGS.includes(key)) env[key] = value;
  }
  for (const [key, value] of Object.entries(settings)) {
    if (value !== undefined) env[key] = value;
  }
  return env;
}

function serverEnv(token: string | undefined, overrides: Record<string, string | undefined> = {}): Record<string, string> {
  return childEnv({
    DATABASE_URL: databaseUrl(),
    AUTH_JWT_SECRET: TEST_JWT_SECRET,
    MCP_AUTH_TOKEN: token,
    LOG_LEVEL: "info",
    ...overrides,
  });
}

function lines(text: string): string[] {
  return text.split("\n").filter((line) => line.trim() !== "");
}

/** Every stderr line is a pino JSON record: no stack traces, warnings or stray prints. */
function expectOnlyLogRecords(stderr: string): void {
  for (const line of lines(stderr)) {
    let record: unknown;
    try {
      record = JSON.parse(line);
    } catch {
      throw new Error(`stderr has a line that is not a log record: ${line}`);
    }
    expect(record).toMatchObject({ level: expect.any(Number), msg: expect.any(String) });
  }
}

interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

interface RawStdioServer {
  child: ChildProcessWithoutNullStreams;
  stdout(): string;
  stderr(): string;
  exited: Promise<Exit>;
  /** Sends a JSON-RPC request and resolves with the response of the same id. */
  request(method: string, params?: Record<string, unknown>): Promise<Record<string, any>>;
  notify(method: string): void;
}

/** The stdio server spawned directly, for what the SDK client hides: exit codes, raw stdout, signals. */
function spawnRaw(env: Record<string, string>, started: ChildProcessWithoutNullStreams[]): RawStdioServer {
  const child = spawn(COMMAND, ARGS, { cwd: ROOT, env, stdio: ["pipe", "pipe", "pipe"] });
  started.push(child);
  let stdout = "";
  let stderr = "";
  let buffered = "";
  let nextId = 1;
  const waiting = new Map<number, (message: Record<string, any>) => void>();
  child.stdout.setEncoding("utf8").on("data", (chunk: string) => {
    stdout += chunk;
    buffered += chunk;
    let newline = buffered.indexOf("\n");
    while (newline !== -1) {
      const line = buffered.slice(0, newline);
      buffered = buffered.slice(newline + 1);
      newline = buffered.indexOf("\n");
      try {
        const message = JSON.parse(line) as Record<string, any>;
        if (typeof message.id === "number") waiting.get(message.id)?.(message);
      } catch {
        // Left in stdout(); the test asserts every line is JSON-RPC.
      }
    }
  });
  child.stderr.setEncoding("utf8").on("data", (chunk: string) => {
    stderr += chunk;
  });
  const exited = new Promise<Exit>((resolve) => child.once("exit", (code, signal) => resolve({ code, signal })));
  const write = (message: Record<string, unknown>) => child.stdin.write(`${JSON.stringify(message)}\n`);
  return {
    child,
    stdout: () => stdout,
    stderr: () => stderr,
    exited,
    request: (method, params) => {
      const id = nextId++;
      const response = new Promise<Record<string, any>>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no response to ${method} within 20 s; stderr: ${stderr}`)), 20_000);
        waiting.set(id, (message) => {
          clearTimeout(timer);
          resolve(message);
        });
        void exited.then(() => reject(new Error(`the server exited before answering ${method}; stderr: ${stderr}`)));
      });
      write({ jsonrpc: "2.0", id, method, ...(params === undefined ? {} : { params }) });
      return response;
    },
    notify: (method) => write({ jsonrpc: "2.0", method }),
  };
}

/** Resolves with the exit, or fails if the process is still running after `timeoutMs`. */
function exitWithin(server: RawStdioServer, timeoutMs = 20_000): Promise<Exit> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`still running after ${timeoutMs} ms; stderr: ${server.stderr()}`)), timeoutMs);
    void server.exited.then((exit) => {
      clearTimeout(timer);
      resolve(exit);
    });
  });
}

async function initialize(server: RawStdioServer): Promise<void> {
  const response = await server.request("initialize", {
    protocolVersion: LATEST_PROTOCOL_VERSION,
    capabilities: {},
    clientInfo: { name: "raw-stdio-test", version: "1.0.0" },
  });
  expect(response.result?.serverInfo?.name).toBe("todo-assistant");
  server.notify("notifications/initialized");
}

describe("MCP over stdio", () => {
  let server: TestServer;
  let user: TestUser;
  let client: Client;
  let transport: StdioClientTransport;
  let tools: Tool[];
  let stderr = "";
  const protocolErrors: Error[] = [];
  const wsClients: TestWsClient[] = [];
  const children: ChildProcessWithoutNullStreams[] = [];

  beforeAll(async () => {
    await ensureBuilt();
    server = await startTestServer();
    user = await newUser(server, "mcp-stdio");
    transport = new StdioClientTransport({ command: COMMAND, args: ARGS, cwd: ROOT, env: serverEnv(user.token), stderr: "pipe" });
    transport.stderr?.on("data", (chunk: Buffer) => {
      stderr += chunk.toString("utf8");
    });
    client = new Client({ name: "mcp-stdio-test", version: "1.0.0" });
    // A line on stdout that is not JSON-RPC surfaces here.
    client.onerror = (error) => void protocolErrors.push(error);
    await client.connect(transport);
    ({ tools } = await client.listTools());
  });

  afterAll(async () => {
    await client?.close();
    await Promise.all(wsClients.map((ws) => ws.dispose()));
    await Promise.all(
      children.map(async (child) => {
        if (child.exitCode === null && child.signalCode === null) {
          const exited = new Promise((resolve) => child.once("exit", resolve));
          child.kill("SIGKILL");
          await exited;
        }
      }),
    );
    await server?.close();
  });

  function rowsOf(userId: string) {
    return server.db.task.findMany({ where: { userId }, orderBy: [{ createdAt: "asc" }, { id: "asc" }] });
  }

  it("should list exactly the five task tools with their schemas and annotations", () => {
    expectToolCatalogue(tools);
  });

  it("should add a task owned by the subject of MCP_AUTH_TOKEN and list it back", async () => {
    const added = await callOk<McpTask>(client, tools, "add_task", { title: "From stdio", description: "over a pipe" });
    const row = await server.db.task.findUniqueOrThrow({ where: { id: parseId(added.id, "id", "Task") } });
    expect(row).toMatchObject({ userId: user.id, title: "From stdio", description: "over a pipe", completed: false });
    expect(added).toEqual({
      id: toGlobalId("Task", row.id),
      title: "From stdio",
      description: "over a pipe",
      completed: false,
      created_at: localIso(row.createdAt.getTime(), "UTC"),
      due: null,
      priority: "none",
      labels: [],
      completed_at: null,
      recurrence: null,
    });

    const listed = await callOk<{ tasks: McpTask[]; count: number; truncated: boolean }>(client, tools, "list_tasks", { status: "pending" });
    expect(listed.tasks).toContainEqual(added);
    const rows = await server.db.task.findMany({ where: { userId: user.id, completed: false }, orderBy: [{ createdAt: "desc" }, { id: "desc" }] });
    expect(listed.tasks.map((task) => task.id)).toEqual(rows.map((each) => toGlobalId("Task", each.id)));
    expect(listed.count).toBe(rows.length);
    expect(await callOk(client, tools, "list_tasks", { status: "completed" })).toMatchObject({ count: 0, tasks: [] });
  });

  it("should answer bad arguments and another user's task with error results and write nothing", async () => {
    const before = await rowsOf(user.id);
    expect(await callError(client, "add_task", {})).toMatch(/^Invalid arguments for add_task: title: /);
    expect(await callError(client, "add_task", { title: "x".repeat(201) })).toBe(
      "Invalid arguments for add_task: title: title must be at most 200 characters",
    );
    expect(await callError(client, "complete_task", { task_id: "garbage" })).toBe(
      'task_id "garbage" is not a task id; use an id that add_task or list_tasks returned',
    );
    expect(await callError(client, "nope", {})).toMatch(/^Unknown tool "nope"\. Available tools: add_task, /);
    expect(await rowsOf(user.id)).toEqual(before);

    const otherId = newUserId("mcp-stdio-other");
    const foreign = await server.db.task.create({ data: { userId: otherId, title: "Not yours" } });
    const foreignId = toGlobalId("Task", foreign.id);
    expect(await callError(client, "complete_task", { task_id: foreignId })).toBe("Task not found. List the tasks to get valid ids.");
    expect(await callError(client, "update_task", { task_id: foreignId, title: "Mine now" })).toBe(
      "Task not found. List the tasks to get valid ids.",
    );
    expect(await callError(client, "delete_task", { task_id: foreignId })).toBe("Task not found. List the tasks to get valid ids.");
    expect(await server.db.task.findUniqueOrThrow({ where: { id: foreign.id } })).toEqual(foreign);
  });

  it("should push changes made over stdio to a taskChanged subscriber of a server on the same database", async () => {
    const ws = wsClient(server.wsUrl, user.token);
    wsClients.push(ws);
    const before = server.app.realtime.establishedCount;
    const sub = ws.subscribe(TASK_CHANGED);
    await vi.waitFor(() => expect(server.app.realtime.establishedCount, "established subscriptions").toBeGreaterThan(before), {
      timeout: 10_000,
      interval: 10,
    });

    const added = await callOk<McpTask>(client, tools, "add_task", { title: "Seen live" });
    await expectNextChange(sub, "CREATED", { id: added.id, title: "Seen live", description: null, completed: false });
    await callOk(client, tools, "complete_task", { task_id: added.id });
    await expectNextChange(sub, "UPDATED", { id: added.id, title: "Seen live", description: null, completed: true });
    await callOk(client, tools, "delete_task", { task_id: added.id });
    await expectNextChange(sub, "DELETED", { id: added.id, title: "Seen live", description: null, completed: true });
    expect(await server.db.task.findUnique({ where: { id: parseId(added.id, "id", "Task") } })).toBeNull();
    sub.dispose();
  });

  it("should keep stdout for the protocol and log to stderr, without the token", () => {
    expect(protocolErrors).toEqual([]);
    expect(stderr).toContain("MCP server ready on stdio");
    expectOnlyLogRecords(stderr);
    expect(stderr).not.toContain(user.token);
  });

  it("should answer malformed tools/call params with -32602 in one line, and refuse a lone surrogate naming the field", async () => {
    const owner = newUserId("mcp-stdio-malformed");
    const raw = spawnRaw(serverEnv(await tokenFor(owner)), children);
    await initialize(raw);
    for (const [args, got] of [
      [null, "null"],
      ["title=x", "a string"],
      [["x"], "an array"],
    ] as const) {
      const response = await raw.request("tools/call", { name: "add_task", arguments: args });
      expect(response.error).toEqual({ code: -32602, message: `Invalid tools/call params: arguments must be an object (got ${got})` });
    }
    // JSON.stringify sends the lone surrogate as the escape \ud800, which JSON.parse turns back into one.
    const surrogate = await raw.request("tools/call", { name: "add_task", arguments: { title: "a\uD800b" } });
    expect(surrogate.result?.isError).toBe(true);
    expect(surrogate.result?.content?.[0]?.text).toMatch(/^title: must be well-formed Unicode/);
    expect(await rowsOf(owner)).toEqual([]);
    raw.child.stdin.end();
    expect(await exitWithin(raw)).toEqual({ code: 0, signal: null });
    expectOnlyLogRecords(raw.stderr());
  });

  describe("process lifecycle", () => {
    it("should write only JSON-RPC to stdout and exit with code 0 when the client closes stdin", async () => {
      const owner = newUserId("mcp-stdio-raw");
      const raw = spawnRaw(serverEnv(await tokenFor(owner)), children);
      await initialize(raw);
      // A query leaves idle connections in the pool; they must not keep the process alive.
      const call = await raw.request("tools/call", { name: "add_task", arguments: { title: "Raw" } });
      expect(call.result?.structuredContent).toMatchObject({ title: "Raw", completed: false });
      expect(await rowsOf(owner)).toMatchObject([{ title: "Raw" }]);

      raw.child.stdin.end();
      expect(await exitWithin(raw)).toEqual({ code: 0, signal: null });
      const out = lines(raw.stdout());
      expect(out).toHaveLength(2);
      for (const line of out) expect(JSON.parse(line)).toMatchObject({ jsonrpc: "2.0", id: expect.any(Number) });
      expectOnlyLogRecords(raw.stderr());
    });

    it("should shut down cleanly with code 0 on SIGTERM", async () => {
      const raw = spawnRaw(serverEnv(await tokenFor(newUserId("mcp-stdio-term"))), children);
      await initialize(raw);
      await raw.request("tools/call", { name: "list_tasks", arguments: {} });
      raw.child.kill("SIGTERM");
      expect(await exitWithin(raw)).toEqual({ code: 0, signal: null });
      expectOnlyLogRecords(raw.stderr());
    });

    const failures: { name: string; env: () => Promise<Record<string, string>>; message: string }[] = [
      {
        name: "MCP_AUTH_TOKEN is unset",
        env: async () => serverEnv(undefined),
        message: "MCP_AUTH_TOKEN must be set to a JWT for the user whose tasks this server manages",
      },
      {
        name: "MCP_AUTH_TOKEN is blank",
        env: async () => serverEnv("   "),
        message: "MCP_AUTH_TOKEN must be set to a JWT for the user whose tasks this server manages",
      },
      {
        name: "MCP_AUTH_TOKEN is not a JWT",
        env: async () => serverEnv("not-a-jwt"),
        message: "MCP_AUTH_TOKEN was rejected: The token is malformed",
      },
      {
        name: "MCP_AUTH_TOKEN is signed with another secret",
        env: async () => serverEnv(await tokenFor(newUserId(), { secret: `other-${randomUUID()}-${randomUUID()}` })),
        message: "MCP_AUTH_TOKEN was rejected: The token's signature is invalid",
      },
      {
        name: "MCP_AUTH_TOKEN has expired",
        env: async () => serverEnv(await tokenFor(newUserId(), { expiresIn: Math.floor(Date.now() / 1000) - 60 })),
        message: "MCP_AUTH_TOKEN was rejected: The token has expired",
      },
      {
        name: "no key to verify MCP_AUTH_TOKEN is configured",
        env: async () => serverEnv(await tokenFor(newUserId()), { AUTH_JWT_SECRET: undefined }),
        message: "Set AUTH_JWT_SECRET or AUTH_JWKS_URL so MCP_AUTH_TOKEN can be verified",
      },
    ];

    // Each case is a whole process start; they are independent, so they run side by side.
    it.concurrent.for(failures)("should exit non-zero with a clear message on stderr when $name", async ({ env, message }, { expect }) => {
      const raw = spawnRaw(await env(), children);
      const exit = await exitWithin(raw);
      expect(exit.signal).toBeNull();
      expect(exit.code).not.toBe(0);
      expect(lines(raw.stderr())).toContain(message);
      expect(raw.stdout()).toBe("");
    });
  });
});
