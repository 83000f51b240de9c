import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createDb, type Db } from "../../src/db/client.js";
import { freePort } from "../../src/db/embedded.js";
import { freshDatabase, newUserId } from "../helpers/db.js";
import { capturingLogger, newUser, startTestServer, type TestServer } from "../helpers/server.js";
import { tokenFor } from "../helpers/tokens.js";

const GRAPHQL_RESPONSE = "application/graphql-response+json";

interface LogEntry {
  msg: string;
  path?: unknown;
  err?: {
    type?: string;
    message?: string;
    code?: string;
    port?: number;
    stack?: string;
    meta?: { driverAdapterError?: { cause?: Record<string, unknown> } };
  };
}

/** The parts of a response body that would leak internals. */
function expectNothingInternal(text: string, secrets: string[]): void {
  expect(text).not.toMatch(/\bat .+:\d+:\d+/); // stack frames
  expect(text).not.toMatch(/stack/i);
  expect(text).not.toMatch(/\b(select|from|where)\b/i);
  expect(text).not.toMatch(/prisma/i);
  expect(text).not.toMatch(/findMany|invocation|P1001|P2021|DatabaseNotReachable|TableDoesNotExist/i);
  expect(text).not.toContain("ECONNREFUSED");
  expect(text).not.toContain("127.0.0.1");
  expect(text).not.toContain(".ts:");
  for (const secret of secrets) expect(text).not.toContain(secret);
}

async function listTasks(server: TestServer, token: string) {
  const response = await fetch(server.url, {
    method: "POST",
    headers: { "content-type": "application/json", accept: GRAPHQL_RESPONSE, authorization: `Bearer ${token}` },
    body: JSON.stringify({ query: "{ tasks { edges { node { id } } } }" }),
  });
  const text = await response.text();
  return {
    status: response.status,
    headers: response.headers,
    text,
    body: JSON.parse(text) as { data?: unknown; errors?: { message: string; path?: unknown[]; extensions?: Record<string, unknown> }[] },
  };
}

describe("an unexpected failure", () => {
  let server: TestServer;
  let db: Db;
  let fresh: { url: string; drop: () => Promise<void> };
  let token: string;
  const captured = capturingLogger();

  beforeAll(async () => {
    // A database that was never migrated: every query fails with "table does not exist", a bug, not an outage.
    fresh = await freshDatabase();
    db = createDb({ url: fresh.url, driver: "pg", poolSize: 1, connectionTimeoutMs: 2000 });
    server = await startTestServer({ db, logger: captured.logger });
    token = await tokenFor(newUserId("masked"));
  });

  afterAll(async () => {
    await server?.close();
    await db?.$disconnect();
    await fresh?.drop();
  });

  it("should reach the client as INTERNAL_SERVER_ERROR with a fixed message and no internal detail", async () => {
    const { status, text, body } = await listTasks(server, token);
    expect(status).toBe(200);
    expect(body.data).toBeNull();
    expect(body.errors).toHaveLength(1);
    const error = body.errors?.[0];
    expect(error?.message).toBe("Unexpected error");
    expect(error?.path).toEqual(["tasks"]);
    expect(error?.extensions).toEqual({ code: "INTERNAL_SERVER_ERROR" });
    expectNothingInternal(text, [new URL(fresh.url).pathname.slice(1), 'tasks" does not exist']);
  });

  it("should leave the server serving", async () => {
    const health = await fetch(`${server.baseUrl}/health`);
    expect(health.status).toBe(200);
    const again = await listTasks(server, token);
    expect(again.body.errors?.[0]?.message).toBe("Unexpected error");
  });

  it("should log the original error but never the token", async () => {
    captured.lines.length = 0;
    await listTasks(server, token);
    const entries = captured.lines.map((line) => JSON.parse(line) as LogEntry);
    const logged = entries.find((entry) => entry.msg === "unexpected error in a GraphQL operation");
    expect(logged?.path).toEqual(["tasks"]);
    // The list is read on the pg pool directly (domain/direct-statement.ts): node-postgres' own error, with its SQLSTATE.
    expect(logged?.err?.type).toBe("DatabaseError");
    expect(logged?.err?.code).toBe("42P01");
    expect(logged?.err?.message).toBe('relation "tasks" does not exist');
    expect(logged?.err?.stack).toBeTruthy();

    const all = captured.lines.join("\n");
    expect(all).not.toContain(token);
    // Not even its signature on its own.
    expect(all).not.toContain(token.split(".")[2] ?? token);
  });
});

describe("an unreachable database", () => {
  let server: TestServer;
  let db: Db;
  let port: number;
  let token: string;
  const captured = capturingLogger();

  beforeAll(async () => {
    // A loopback port nothing listens on: every query fails to connect.
    port = await freePort();
    db = createDb({
      // A made-up credential that must never show up in an answer (secretlint: not a real one).
      url: `postgresql://app:not-the-password@127.0.0.1:${port}/nowhere`, // secretlint-disable-line
      driver: "pg",
      poolSize: 1,
      connectionTimeoutMs: 500,
    });
    server = await startTestServer({ db, logger: captured.logger });
    token = await tokenFor(newUserId("unreachable"));
  });

  afterAll(async () => {
    await server?.close();
    await db?.$disconnect();
  });

  it("should answer 503 SERVICE_UNAVAILABLE, retryable, naming nothing internal", async () => {
    const { status, headers, text, body } = await listTasks(server, token);
    expect(status).toBe(503);
    expect(headers.get("retry-after")).toBe("1");
    expect(body.data).toBeNull();
    expect(body.errors).toHaveLength(1);
    expect(body.errors?.[0]?.extensions).toEqual({ code: "SERVICE_UNAVAILABLE", retryable: true });
    expect(body.errors?.[0]?.message).toBe("The service is temporarily unavailable; retry shortly");
    expectNothingInternal(text, [String(port), "nowhere", "not-the-password"]);
  });

  it("should log the cause as a warning, never the password or the token", async () => {
    captured.lines.length = 0;
    await listTasks(server, token);
    const entries = captured.lines.map((line) => JSON.parse(line) as LogEntry & { level: number });
    const logged = entries.find((entry) => entry.msg === "database unavailable");
    expect(logged?.level).toBe(40);
    // The list's direct read (domain/direct-statement.ts): node-postgres' connection error as it is.
    expect(logged?.err?.code).toBe("ECONNREFUSED");
    expect(logged?.err?.port).toBe(port);
    const all = captured.lines.join("\n");
    expect(all).not.toContain("not-the-password");
    expect(all).not.toContain(token);
  });
});

describe("a malformed request", () => {
  let server: TestServer;

  beforeAll(async () => {
    server = await startTestServer();
  });

  afterAll(async () => {
    await server?.close();
  });

  it("should answer a malformed JSON body with a 400 GraphQL error", async () => {
    const user = await newUser(server, "malformed-json");
    const response = await fetch(server.url, {
      method: "POST",
      headers: { "content-type": "application/json", accept: GRAPHQL_RESPONSE, authorization: `Bearer ${user.token}` },
      body: '{"query": "{ tasks { edges { node { id } } } }"',
    });
    expect(response.status).toBe(400);
    expect(response.headers.get("content-type")).toContain(GRAPHQL_RESPONSE);
    const body = (await response.json()) as { data?: unknown; errors?: { message: string }[] };
    expect(body.data).toBeUndefined();
    expect(body.errors).toHaveLength(1);
    expect(body.errors?.[0]?.message).toBe("The request body is not valid JSON");
    expect(body.errors?.[0]).toMatchObject({ extensions: { code: "BAD_USER_INPUT" } });

    const after = await user.gql(`{ tasks { edges { node { id } } } }`);
    expect(after.errors).toBeUndefined();
  });

  it("should refuse a mutation sent with GET with a 405 GraphQL error and not run it", async () => {
    const user = await newUser(server, "get-mutation");
    const query = `mutation { addTask(input: { title: "sent with GET" }) { id } }`;
    const response = await fetch(`${server.url}?query=${encodeURIComponent(query)}`, {
      headers: { accept: GRAPHQL_RESPONSE, authorization: `Bearer ${user.token}` },
    });
    expect(response.status).toBe(405);
    expect(response.headers.get("allow")).toBe("POST");
    const body = (await response.json()) as { data?: unknown; errors?: { message: string }[] };
    expect(body.data).toBeUndefined();
    expect(body.errors).toHaveLength(1);
    expect(body.errors?.[0]?.message).toBe("Can only perform a mutation operation from a POST request.");

    const listed = await user.gql(`{ tasks { edges { node { id } } } }`);
    expect(listed.errors).toBeUndefined();
    expect(listed.data?.tasks.edges).toEqual([]);
  });
});
