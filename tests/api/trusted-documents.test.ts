import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { randomUUID } from "node:crypto";
import { webManifest } from "../../scripts/trusted-documents.js";
import { toGlobalId } from "../../src/lib/ids.js";
import { createDb, type Db } from "../../src/db/client.js";
import { freePort } from "../../src/db/embedded.js";
import { sha256Hex, TrustedDocuments } from "../../src/server/trusted-documents.js";
import { WEB_DOCUMENTS } from "../../src/server/trusted-manifest.js";
import { schema } from "../../src/schema/index.js";
import { newUserId } from "../helpers/db.js";
import { startTestServer, type TestServer } from "../helpers/server.js";
import { tokenFor } from "../helpers/tokens.js";
import { wsClient } from "../helpers/ws-client.js";

// Trusted (persisted) documents: the web client's operations and TRUSTED_DOCUMENTS_FILE's, by sha256
// (src/server/persisted-operations.ts); ALLOW_ARBITRARY_OPERATIONS=false runs nothing else; trusted
// queries and mutations run on graphql-jit, which must answer exactly as graphql-js does.

const LIST = "query Page($first: Int) { tasks(first: $first) { edges { node { id title completed } } pageInfo { hasNextPage } } }";
const ADD = "mutation Add($title: String!) { addTask(input: { title: $title }) { id title completed } }";
const ONE = "query One($id: ID!) { task(id: $id) { id title } }";
const UPDATE = "mutation Rename($id: ID!, $title: String) { updateTask(input: { id: $id, title: $title }) { id title } }";
const DUE = "mutation Due($id: ID!, $dueAt: DateTime) { updateTask(input: { id: $id, dueAt: $dueAt }) { id dueAt } }";
const EXTRA = Object.fromEntries([LIST, ADD, ONE, UPDATE, DUE].map((text) => [sha256Hex(text), text]));
const WEB_TASKS = Object.values(WEB_DOCUMENTS).find((text) => text.startsWith("query Tasks("))!;

interface Body {
  data?: Record<string, any> | null;
  errors?: { message: string; path?: unknown; extensions?: Record<string, unknown> }[];
}

async function post(server: TestServer, token: string, body: Record<string, unknown>): Promise<{ status: number; body: Body }> {
  const response = await fetch(server.url, {
    method: "POST",
    headers: { "content-type": "application/json", authorization: `Bearer ${token}` },
    body: JSON.stringify(body),
  });
  return { status: response.status, body: (await response.json()) as Body };
}

describe("the web client's manifest", () => {
  it("should be what npm run trusted-documents writes from web/src/documents.ts", async () => {
    expect(Object.entries(WEB_DOCUMENTS).sort(([a], [b]) => a.localeCompare(b))).toEqual(await webManifest());
  });

  it("should refuse a manifest whose hash is not its text's, or whose document does not fit the schema", () => {
    expect(() => new TrustedDocuments(schema, [{ [sha256Hex("{ x }")]: LIST }])).toThrow(/not the sha256 of its text/);
    const bad = "{ nosuchfield }";
    expect(() => new TrustedDocuments(schema, [{ [sha256Hex(bad)]: bad }])).toThrow(/does not fit the schema/);
  });
});

describe("trusted documents with arbitrary documents allowed (the default)", () => {
  let server: TestServer;
  let token: string;

  beforeAll(async () => {
    server = await startTestServer({ operations: { allowArbitrary: true, manifests: [EXTRA] } });
    token = await tokenFor(newUserId("trusted"));
    await post(server, token, { query: ADD, variables: { title: "first" } });
  });
  afterAll(async () => {
    await server?.close();
  });

  it("should run a known hash sent as extensions.persistedQuery.sha256Hash or documentId, as the same text would", async () => {
    const byText = await post(server, token, { query: LIST, variables: { first: 5 } });
    expect(byText.body.data?.tasks.edges).toHaveLength(1);
    const apq = await post(server, token, { variables: { first: 5 }, extensions: { persistedQuery: { version: 1, sha256Hash: sha256Hex(LIST) } } });
    const documentId = await post(server, token, { documentId: `sha256:${sha256Hex(LIST)}`, variables: { first: 5 } });
    expect(apq).toEqual(byText);
    expect(documentId).toEqual(byText);
  });

  it("should answer an unknown hash PERSISTED_QUERY_NOT_FOUND (404), running nothing", async () => {
    const unknown = sha256Hex("query Nope { tasks { edges { node { id } } } }");
    const { status, body } = await post(server, token, { extensions: { persistedQuery: { version: 1, sha256Hash: unknown } } });
    expect(status).toBe(404);
    expect(body.data).toBeUndefined();
    expect(body.errors).toHaveLength(1);
    expect(body.errors?.[0]?.extensions).toEqual({ code: "PERSISTED_QUERY_NOT_FOUND" });
    expect(body.errors?.[0]?.message).toContain(unknown);
    const byId = await post(server, token, { documentId: unknown, query: ADD, variables: { title: "never" } });
    expect(byId.status).toBe(404);
    const after = await post(server, token, { query: LIST, variables: { first: 5 } });
    expect(after.body.data?.tasks.edges).toHaveLength(1);
  });

  it("should refuse a trusted mutation over GET as it refuses any mutation there, and run a trusted query", async () => {
    const get = async (hash: string, variables: Record<string, unknown>) => {
      const extensions = encodeURIComponent(JSON.stringify({ persistedQuery: { version: 1, sha256Hash: hash } }));
      const url = `${server.url}?extensions=${extensions}&variables=${encodeURIComponent(JSON.stringify(variables))}`;
      const response = await fetch(url, { headers: { authorization: `Bearer ${token}`, accept: "application/json" } });
      return { status: response.status, body: (await response.json()) as Body };
    };
    const mutation = await get(sha256Hex(ADD), { title: "over GET" });
    expect(mutation.status).toBe(405);
    expect(mutation.body.data).toBeUndefined();
    const query = await get(sha256Hex(LIST), { first: 5 });
    expect(query.status).toBe(200);
    expect(query.body.data?.tasks.edges.map((edge: { node: { title: string } }) => edge.node.title)).toEqual(["first"]);
  });

  it("should still run an arbitrary document", async () => {
    const { status, body } = await post(server, token, { query: "{ tasks(first: 1) { edges { node { title } } } }" });
    expect(status).toBe(200);
    expect(body.data?.tasks.edges[0].node.title).toBe("first");
  });
});

describe("ALLOW_ARBITRARY_OPERATIONS=false", () => {
  let server: TestServer;
  let token: string;

  beforeAll(async () => {
    server = await startTestServer({ operations: { allowArbitrary: false, manifests: [EXTRA] } });
    token = await tokenFor(newUserId("trusted-only"));
  });
  afterAll(async () => {
    await server?.close();
  });

  it("should refuse a document that is not trusted with PERSISTED_QUERY_REQUIRED, saying why", async () => {
    const { status, body } = await post(server, token, { query: "{ tasks(first: 1) { edges { node { id } } } }" });
    expect(status).toBe(400);
    expect(body.data).toBeUndefined();
    expect(body.errors?.[0]?.extensions).toEqual({ code: "PERSISTED_QUERY_REQUIRED" });
    expect(body.errors?.[0]?.message).toContain("ALLOW_ARBITRARY_OPERATIONS=false");
  });

  it("should run trusted documents by hash and by their exact text, the web client's included", async () => {
    const added = await post(server, token, { documentId: sha256Hex(ADD), variables: { title: "kept" } });
    expect(added.body.data?.addTask.title).toBe("kept");
    const web = await post(server, token, { query: WEB_TASKS, variables: { status: "ALL" } });
    expect(web.status).toBe(200);
    expect(web.body.data?.tasks.edges.map((edge: { node: { title: string } }) => edge.node.title)).toEqual(["kept"]);
  });

  it("should refuse an arbitrary document over graphql-ws too, and run a trusted one", async () => {
    const ws = wsClient(server.wsUrl, token);
    try {
      const refused = ws.subscribe("{ tasks(first: 1) { edges { node { id } } } }");
      await expect(refused.ended).rejects.toEqual([expect.objectContaining({ extensions: { code: "PERSISTED_QUERY_REQUIRED" } })]);
      const trusted = ws.subscribe(WEB_TASKS, { status: "ALL" });
      const result = await trusted.next();
      expect(result.errors).toBeUndefined();
      expect((result.data as { tasks: { edges: unknown[] } }).tasks.edges).toHaveLength(1);
    } finally {
      await ws.dispose();
    }
  });
});

describe("the compiled executor (trusted documents) against graphql-js (the same text, not trusted)", () => {
  let jit: TestServer;
  let plain: TestServer;
  let token: string;
  let taskId: string;

  beforeAll(async () => {
    jit = await startTestServer({ operations: { allowArbitrary: true, manifests: [EXTRA] } });
    plain = await startTestServer({ operations: { allowArbitrary: true } });
    token = await tokenFor(newUserId("jit"));
    const added = await post(plain, token, { query: ADD, variables: { title: "same" } });
    taskId = added.body.data?.addTask.id as string;
  });
  afterAll(async () => {
    await jit?.close();
    await plain?.close();
  });

  const cases: [string, () => Record<string, unknown>][] = [
    ["a page", () => ({ query: LIST, variables: { first: 3 } })],
    ["a page size past the bound (BAD_USER_INPUT)", () => ({ query: LIST, variables: { first: 1000 } })],
    ["a variable of the wrong type", () => ({ query: LIST, variables: { first: "many" } })],
    ["a task", () => ({ query: ONE, variables: { id: taskId } })],
    ["another user's or no task (NOT_FOUND)", () => ({ query: ONE, variables: { id: toGlobalId("Task", randomUUID()) } })],
    ["a malformed id (BAD_USER_INPUT naming the field)", () => ({ query: ONE, variables: { id: "nope" } })],
    ["a mutation refused by a bound", () => ({ query: UPDATE, variables: { id: taskId, title: "x".repeat(500) } })],
    ["a mutation setting a required field to null", () => ({ query: UPDATE, variables: { id: taskId, title: null } })],
    [
      "a DateTime without an offset (BAD_USER_INPUT naming the variable)",
      () => ({ query: DUE, variables: { id: taskId, dueAt: "2026-12-24T10:00:00" } }),
    ],
  ];
  for (const [what, body] of cases) {
    it(`should answer ${what} exactly alike`, async () => {
      const expected = await post(plain, token, body());
      expect(await post(jit, token, body())).toEqual(expected);
    });
  }

  it("should name the variable of a DateTime without an offset in extensions.field on the compiled executor", async () => {
    const refused = await post(jit, token, { query: DUE, variables: { id: taskId, dueAt: "2026-12-24T10:00:00" } });
    expect(refused.status).toBe(400);
    expect(refused.body.errors?.[0]?.extensions).toMatchObject({ code: "BAD_USER_INPUT", field: "dueAt" });
  });
});

describe("the compiled executor when the database is unreachable", () => {
  let db: Db;
  let jit: TestServer;
  let plain: TestServer;
  let token: string;

  beforeAll(async () => {
    // A loopback port nothing listens on: the resolver's error must be masked alike on both executors.
    db = createDb({ url: `postgresql://app:unused@127.0.0.1:${await freePort()}/nowhere`, driver: "pg", poolSize: 1, connectionTimeoutMs: 500 }); // secretlint-disable-line
    jit = await startTestServer({ db, operations: { allowArbitrary: true, manifests: [EXTRA] } });
    plain = await startTestServer({ db, operations: { allowArbitrary: true } });
    token = await tokenFor(newUserId("jit-down"));
  });
  afterAll(async () => {
    await jit?.close();
    await plain?.close();
    await db?.$disconnect();
  });

  it("should answer 503 SERVICE_UNAVAILABLE with the same masked body", async () => {
    const expected = await post(plain, token, { query: LIST, variables: { first: 2 } });
    expect(expected.status).toBe(503);
    expect(expected.body.errors?.[0]?.extensions).toEqual({ code: "SERVICE_UNAVAILABLE", retryable: true });
    expect(await post(jit, token, { query: LIST, variables: { first: 2 } })).toEqual(expected);
  });
});

describe("another user's task through a trusted document (the compiled executor)", () => {
  let server: TestServer;
  let alice: string;
  let bob: string;
  let aliceTask: string;

  beforeAll(async () => {
    server = await startTestServer({ operations: { allowArbitrary: false, manifests: [EXTRA] } });
    alice = await tokenFor(newUserId("alice"));
    bob = await tokenFor(newUserId("bob"));
    const added = await post(server, alice, { documentId: sha256Hex(ADD), variables: { title: "alice's" } });
    aliceTask = added.body.data?.addTask.id as string;
  });
  afterAll(async () => {
    await server?.close();
  });

  it("should answer NOT_FOUND exactly as for an id that names nothing, by hash and by text, and change nothing", async () => {
    const nothing = toGlobalId("Task", randomUUID());
    for (const [query, variables] of [
      [ONE, (id: string) => ({ id })],
      [UPDATE, (id: string) => ({ id, title: "bob's" })],
    ] as const) {
      const none = await post(server, bob, { documentId: sha256Hex(query), variables: variables(nothing) });
      expect(none.body.errors?.[0]?.extensions).toEqual({ code: "NOT_FOUND" });
      const byHash = await post(server, bob, { documentId: sha256Hex(query), variables: variables(aliceTask) });
      const byText = await post(server, bob, { query, variables: variables(aliceTask) });
      expect(byHash).toEqual(none);
      expect(byText).toEqual(none);
    }
    const mine = await post(server, alice, { documentId: sha256Hex(ONE), variables: { id: aliceTask } });
    expect(mine.body.data?.task).toEqual({ id: aliceTask, title: "alice's" });
    const theirs = await post(server, bob, { documentId: sha256Hex(LIST), variables: { first: 10 } });
    expect(theirs.body.data?.tasks.edges).toEqual([]);
  });
});
