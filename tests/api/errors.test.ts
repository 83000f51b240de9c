import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createDb, type Db } from "../../src/db/client.js";
import { freePort } from "../../src/db/embedded.js";
import { newUserId } from "../helpers/db.js";
import { capturingLogger, newUser, startTestServer, type TestServer } from "../helpers/server.js";
import { tokenFor } from "../helpers/tokens.js";

const GRAPHQL_RESPONSE = "application/graphql-response+json";

interface LogEntry {
  msg: string;
  path?: unknown;
  err?: { type?: string; message?: string; code?: string; stack?: string };
}

describe("an unexpected failure", () => {
  let server: TestServer;
  let db: Db;
  let port: number;
  let token: string;
  const captured = capturingLogger();

  beforeAll(async () => {
    // A loopback port nothing listens on: every query fails with a driver error.
    port = await freePort();
    db = createDb({
      url: `postgresql://app:not-the-password@127.0.0.1:${port}/nowhere`,
      driver: "pg",
      poolSize: 1,
      connectionTimeoutMs: 500,
    });
    server = await startTestServer({ db, logger: captured.logger });
    token = await tokenFor(newUserId("masked"));
  });

  afterAll(async () => {
    await server?.close();
    await db?.$disconnect();
  });

  async function listTasks() {
    const response = await fetch(server.url, {
      method: "POST",
      headers: { "content-type": "application/json", accept: GRAPHQL_RESPONSE, authorization: `Bearer ${token}` },
      body: JSON.stringify({ query: "{ tasks { edges { node { id } } } }" }),
    });
    const text = await response.text();
    return { status: response.status, text, body: JSON.parse(text) as { data?: unknown; errors?: { message: string; path?: unknown[]; extensions?: Record<string, unknown> }[] } };
  }

  it("should reach the client as INTERNAL_SERVER_ERROR with a fixed message and no internal detail", async () => {
    const { text, body } = await listTasks();
    expect(body.data).toBeNull();
    expect(body.errors).toHaveLength(1);
    const error = body.errors?.[0];
    expect(error?.message).toBe("Unexpected error");
    expect(error?.path).toEqual(["tasks"]);
    expect(error?.extensions).toEqual({ code: "INTERNAL_SERVER_ERROR" });

    expect(text).not.toMatch(/\bat .+:\d+:\d+/); // stack frames
    expect(text).not.toMatch(/stack/i);
    expect(text).not.toMatch(/\b(select|from|where)\b/i);
    expect(text).not.toMatch(/prisma/i);
    expect(text).not.toMatch(/findMany|invocation|P1001|DatabaseNotReachable/i);
    expect(text).not.toContain("ECONNREFUSED");
    expect(text).not.toContain("127.0.0.1");
    expect(text).not.toContain(String(port));
    expect(text).not.toContain("nowhere");
    expect(text).not.toContain(".ts:");
  });

  it("should leave the server serving", async () => {
    const health = await fetch(`${server.baseUrl}/health`);
    expect(health.status).toBe(200);
    const again = await listTasks();
    expect(again.body.errors?.[0]?.message).toBe("Unexpected error");
  });

  it("should log the original error but never the token", async () => {
    captured.lines.length = 0;
    await listTasks();
    const entries = captured.lines.map((line) => JSON.parse(line) as LogEntry);
    const logged = entries.find((entry) => entry.msg === "unexpected error in a GraphQL operation");
    expect(logged?.path).toEqual(["tasks"]);
    expect(logged?.err?.type).toBe("PrismaClientKnownRequestError");
    expect(logged?.err?.code).toBe("P1001");
    expect(logged?.err?.message).toContain(`Can't reach database server at 127.0.0.1:${port}`);
    expect(logged?.err?.stack).toBeTruthy();

    const all = captured.lines.join("\n");
    expect(all).not.toContain(token);
    // Not even its signature on its own.
    expect(all).not.toContain(token.split(".")[2] ?? token);
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
    expect(body.errors?.[0]?.message).toBe("POST body sent invalid JSON.");

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
