import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Db } from "../../src/db/client.js";
import { testDb } from "../helpers/db.js";
import { newUser, productionHttp, startTestServer, testAssistant, type TestServer, type TestUser } from "../helpers/server.js";

const TEN_MB = 10 * 1024 * 1024;
const TASKS = "{ tasks { edges { node { id title } } } }";

/** A body sent in chunks with no Content-Length, so only reading it shows its size. */
function chunkedBody(bytes: number): ReadableStream<Uint8Array> {
  const chunk = new Uint8Array(64 * 1024).fill(0x20);
  let sent = 0;
  return new ReadableStream({
    pull(controller) {
      if (sent >= bytes) return controller.close();
      controller.enqueue(chunk);
      sent += chunk.length;
    },
  });
}

describe("authentication first", () => {
  const statements: string[] = [];
  let db: Db;
  let server: TestServer;
  let user: TestUser;

  beforeAll(async () => {
    db = testDb({ onQuery: (sql) => statements.push(sql) });
    // No approval sweep: its timer (woken by other files' approvals in the shared database) would add statements to the count.
    server = await startTestServer({ db, assistant: testAssistant({ approvalSweep: false }) });
    user = await newUser(server, "auth-first");
  });
  afterAll(async () => {
    await server?.close();
    await db?.$disconnect();
  });

  function post(body: BodyInit, headers: Record<string, string> = {}): Promise<Response> {
    return fetch(server.url, {
      method: "POST",
      headers: { "content-type": "application/json", ...headers },
      body,
      duplex: "half",
    } as RequestInit);
  }

  it("should answer a 10 MB body without a token with 413, not 200", async () => {
    const response = await post(`{"query":"${" ".repeat(TEN_MB)}{ tasks { edges { node { id } } } }"}`);
    expect(response.status).toBe(413);
    const body = (await response.json()) as { errors: { message: string; extensions: Record<string, unknown> }[] };
    expect(body.errors[0]?.extensions).toEqual({ code: "BAD_USER_INPUT", limit: "MAX_BODY_BYTES" });
    expect(body.errors[0]?.message).toBe("The request body is larger than 1048576 bytes (MAX_BODY_BYTES)");
  });

  it("should answer 401 to a chunked body without a token, without reading it", async () => {
    const response = await post(chunkedBody(TEN_MB));
    expect(response.status).toBe(401);
    expect(((await response.json()) as { errors: { extensions: { code: string } }[] }).errors[0]?.extensions.code).toBe("UNAUTHENTICATED");
  });

  it("should cut a chunked body over the limit with 413, with a token", async () => {
    const response = await post(chunkedBody(2 * 1024 * 1024), { authorization: `Bearer ${user.token}` });
    expect(response.status).toBe(413);
  });

  it("should answer a typo query without a token with 401 and no suggestion", async () => {
    statements.length = 0;
    const response = await post(JSON.stringify({ query: "{ taks { edges { node { id } } } }" }));
    expect(response.status).toBe(401);
    expect(response.headers.get("www-authenticate")).toContain("Bearer");
    const text = await response.text();
    expect(text).not.toMatch(/Did you mean|tasks|Cannot query/);
    expect(JSON.parse(text)).toEqual({
      errors: [{ message: "Missing Authorization header: send `Authorization: Bearer <JWT>`", extensions: { code: "UNAUTHENTICATED" } }],
    });
    expect(statements).toEqual([]);
  });

  it("should answer a valid query without a token with 401", async () => {
    const response = await post(JSON.stringify({ query: TASKS }));
    expect(response.status).toBe(401);
    const garbage = await post(JSON.stringify({ query: TASKS }), { authorization: "Bearer not.a.jwt" });
    expect(garbage.status).toBe(401);
  });

  it("should answer a GET without a token with 401, and a GET with one normally", async () => {
    const url = `${server.url}?query=${encodeURIComponent(TASKS)}`;
    expect((await fetch(url, { headers: { accept: "application/json" } })).status).toBe(401);
    const ok = await fetch(url, { headers: { accept: "application/json", authorization: `Bearer ${user.token}` } });
    expect(ok.status).toBe(200);
    expect(((await ok.json()) as { errors?: unknown }).errors).toBeUndefined();
  });
});

describe("input integrity", () => {
  let server: TestServer;
  let user: TestUser;

  beforeAll(async () => {
    server = await startTestServer();
    user = await newUser(server, "utf8");
  });
  afterAll(async () => {
    await server?.close();
  });

  it("should answer a body that is not valid UTF-8 with 400 BAD_USER_INPUT and store nothing", async () => {
    const before = Buffer.from(JSON.stringify({ query: `mutation { addTask(input: { title: "caf` }));
    const after = Buffer.from(JSON.stringify({ query: `" }) { id title } }` }));
    // A lone 0xE9 is Latin-1 "é", not UTF-8: it must not become U+FFFD.
    const body = Buffer.concat([before.subarray(0, before.length - 2), Buffer.from([0xe9]), after.subarray(10)]);
    const response = await fetch(server.url, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${user.token}` },
      body,
    });
    expect(response.status).toBe(400);
    expect(await response.json()).toEqual({
      errors: [{ message: "The request body is not valid UTF-8", extensions: { code: "BAD_USER_INPUT" } }],
    });
    const listed = await user.gql(TASKS);
    expect(listed.data?.tasks.edges).toEqual([]);
  });

  it("should answer a query string that is not percent-encoded UTF-8 with 400", async () => {
    const response = await fetch(`${server.url}?query=%7B%20tasks%20%7B%20edges%20%7B%20node%20%7B%20title%E9%20%7D%20%7D%20%7D%20%7D`, {
      headers: { accept: "application/json", authorization: `Bearer ${user.token}` },
    });
    expect(response.status).toBe(400);
    expect(((await response.json()) as { errors: { message: string }[] }).errors[0]?.message).toBe(
      "The query string is not valid percent-encoded UTF-8",
    );
  });

  it("should keep valid multi-byte text exactly", async () => {
    const title = "café 🧾 日本";
    const added = await user.gql(`mutation ($t: String!) { addTask(input: { title: $t }) { title } }`, { t: title });
    expect(added.data?.addTask.title).toBe(title);
  });

  it("should answer other content types with 415", async () => {
    const response = await fetch(server.url, {
      method: "POST",
      headers: { "content-type": "text/plain", authorization: `Bearer ${user.token}` },
      body: JSON.stringify({ query: TASKS }),
    });
    expect(response.status).toBe(415);
  });
});

describe("production defaults", () => {
  let server: TestServer;
  let user: TestUser;

  beforeAll(async () => {
    server = await startTestServer({ http: productionHttp() });
    user = await newUser(server, "production");
  });
  afterAll(async () => {
    await server?.close();
  });

  it("should refuse introspection", async () => {
    const schema = await user.gql(`{ __schema { types { name } } }`);
    expect(schema.data ?? null).toBeNull();
    expect(schema.errors?.[0]?.extensions?.code).toBe("BAD_USER_INPUT");
    expect(schema.errors?.[0]?.message).toMatch(/introspection/i);
    const type = await user.gql(`{ __type(name: "Task") { fields { name } } }`);
    expect(type.errors?.[0]?.message).toMatch(/introspection/i);
    // __typename is not introspection of the schema.
    const typename = await user.gql(`{ __typename }`);
    expect(typename.data).toEqual({ __typename: "Query" });
  });

  it("should give no field or enum suggestions", async () => {
    const typo = await user.gql(`{ taks { edges { node { id } } } }`);
    expect(typo.errors?.[0]?.message).toBe('Cannot query field "taks" on type "Query".');
    const enumTypo = await user.gql(`query ($s: TaskStatusFilter) { tasks(status: $s) { edges { node { id } } } }`, { s: "PENDNG" });
    expect(enumTypo.errors?.[0]?.extensions?.code).toBe("BAD_USER_INPUT");
    expect(JSON.stringify(enumTypo)).not.toMatch(/Did you mean|PENDING/);
  });

  it("should still answer introspection when GRAPHQL_INTROSPECTION=true", async () => {
    const open = await startTestServer({ http: productionHttp({ introspection: true }) });
    try {
      const other = await newUser(open, "introspection");
      const schema = await other.gql(`{ __schema { queryType { name } } }`);
      expect(schema.data).toEqual({ __schema: { queryType: { name: "Query" } } });
    } finally {
      await open.close();
    }
  });
});

describe("development", () => {
  let server: TestServer;
  let user: TestUser;

  beforeAll(async () => {
    server = await startTestServer();
    user = await newUser(server, "development");
  });
  afterAll(async () => {
    await server?.close();
  });

  it("should keep suggestions and introspection for an authenticated developer", async () => {
    const typo = await user.gql(`{ taks { edges { node { id } } } }`);
    expect(typo.errors?.[0]?.message).toContain("Did you mean");
    const schema = await user.gql(`{ __schema { queryType { name } } }`);
    expect(schema.errors).toBeUndefined();
  });
});
