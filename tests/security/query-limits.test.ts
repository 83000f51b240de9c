import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Db } from "../../src/db/client.js";
import { appendMessages } from "../../src/domain/messages.js";
import { toGlobalId } from "../../src/lib/ids.js";
import { testDb } from "../helpers/db.js";
import { newUser, startTestServer, testAssistant, type TestServer, type TestUser } from "../helpers/server.js";
import { wsClient } from "../helpers/ws-client.js";

/** `conversation { messages(first: 100) { … conversation { messages(first: 100) { … } } } }`, nested `levels` times. */
function nestedMessages(levels: number): string {
  let inner = "id content";
  for (let level = 0; level < levels; level++) {
    inner = `id content conversation { id messages(first: 100) { edges { node { ${inner} } } } }`;
  }
  return `query Nested($id: ID!) { conversation(id: $id) { id messages(first: 100) { edges { node { ${inner} } } } } }`;
}

function aliases(count: number): string {
  return `{ ${Array.from({ length: count }, (_, i) => `a${i}: tasks(first: 1) { edges { node { id } } }`).join(" ")} }`;
}

describe("query limits", () => {
  const statements: string[] = [];
  let db: Db;
  let server: TestServer;
  let user: TestUser;
  let conversationId: string;

  beforeAll(async () => {
    db = testDb({ onQuery: (sql) => statements.push(sql) });
    // No approval sweep: its timer (woken by other files' approvals in the shared database) would add statements to the count.
    server = await startTestServer({ db, assistant: testAssistant({ approvalSweep: false }) });
    user = await newUser(server, "limits");
    const conversation = await db.conversation.create({ data: { userId: user.id, title: "twenty messages" } });
    await db.$transaction((tx) =>
      appendMessages(
        tx,
        user.id,
        conversation.id,
        Array.from({ length: 20 }, (_, i) => ({ role: "user" as const, content: `m${i}` })),
      ),
    );
    conversationId = toGlobalId("Conversation", conversation.id);
  });

  afterAll(async () => {
    await server?.close();
    await db?.$disconnect();
  });

  async function refusedWithoutSql(query: string, variables?: Record<string, unknown>) {
    statements.length = 0;
    const response = await user.gql(query, variables);
    expect(statements).toEqual([]);
    expect(response.data ?? null).toBeNull();
    expect(response.errors?.length).toBeGreaterThan(0);
    for (const error of response.errors ?? []) expect(error.extensions?.code).toBe("BAD_USER_INPUT");
    return (response.errors ?? []).map((error) => error.message);
  }

  it("should refuse the 3- and 4-level nested message pages before any SQL runs", async () => {
    for (const levels of [2, 3]) {
      const messages = await refusedWithoutSql(nestedMessages(levels), { id: conversationId });
      expect(messages.join("\n")).toMatch(/Query depth limit of 10 exceeded, found \d+ \(GRAPHQL_MAX_DEPTH\)/);
    }
  });

  it("should refuse nested pages by their multiplied cost, even within the depth limit", async () => {
    const query = `query { conversations(first: 100) { edges { node { messages(first: 100) { edges { node { id } } } } } } }`;
    const [message] = await refusedWithoutSql(query);
    expect(message).toMatch(/^Query cost 20301 exceeds the limit of 5000 \(GRAPHQL_MAX_COST\)/);
  });

  it("should refuse a costly document without variables every time it is sent (its cost is kept per document)", async () => {
    const query = `query { conversations(first: 100) { edges { node { messages(first: 60) { edges { node { id } } } } } } }`;
    for (let attempt = 0; attempt < 3; attempt += 1) {
      const [message] = await refusedWithoutSql(query);
      expect(message).toMatch(/^Query cost 12301 exceeds the limit of 5000 \(GRAPHQL_MAX_COST\)/);
    }
  });

  it("should cost each operation of one document on its own", async () => {
    const document = `query Big { conversations(first: 100) { edges { node { messages(first: 100) { edges { node { id } } } } } } }
      query Small { conversations(first: 2) { edges { node { id } } } }`;
    for (const [operationName, refused] of [
      ["Big", true],
      ["Small", false],
      ["Big", true],
    ] as const) {
      const response = await fetch(server.url, {
        method: "POST",
        headers: { "content-type": "application/json", authorization: `Bearer ${user.token}` },
        body: JSON.stringify({ query: document, operationName }),
      });
      const body = (await response.json()) as { errors?: { message: string }[] };
      expect(body.errors?.some((error) => error.message.includes("GRAPHQL_MAX_COST")) ?? false, operationName).toBe(refused);
    }
  });

  it("should count page sizes given in variables", async () => {
    const query = `query ($a: Int, $b: Int) { conversations(first: $a) { edges { node { messages(last: $b) { edges { node { id } } } } } } }`;
    const [message] = await refusedWithoutSql(query, { a: 100, b: 100 });
    expect(message).toContain("GRAPHQL_MAX_COST");
    const small = await user.gql(query, { a: 20, b: 20 });
    expect(small.errors).toBeUndefined();
  });

  it("should refuse 5,000 aliases of tasks at parse time", async () => {
    const [message] = await refusedWithoutSql(aliases(5000));
    expect(message).toMatch(/Token limit of 1000 exceeded/);
  });

  it("should refuse 16 aliases by the alias limit", async () => {
    const messages = await refusedWithoutSql(aliases(16));
    expect(messages).toContain("Aliases limit of 15 exceeded, found 16 (GRAPHQL_MAX_ALIASES)");
  });

  it("should refuse too many directives", async () => {
    const fields = Array.from({ length: 51 }, () => "@include(if: true)").join(" ");
    const messages = await refusedWithoutSql(`{ tasks(first: 1) ${fields} { edges { node { id } } } }`);
    expect(messages).toContain("Directives limit of 50 exceeded, found 51 (GRAPHQL_MAX_DIRECTIVES)");
  });

  it("should answer the queries a chat client makes", async () => {
    const conversations = await user.gql(`{
      conversations(first: 20) { edges { node { id title messages(last: 20) {
        edges { node { id role content seq toolCallId toolCalls { id name arguments result error } } }
        pageInfo { hasPreviousPage startCursor }
      } } } }
    }`);
    expect(conversations.errors).toBeUndefined();
    const one = await user.gql(
      `query ($id: ID!) { conversation(id: $id) { id messages(last: 50) { edges { node { id content conversation { id title } } } } } }`,
      { id: conversationId },
    );
    expect(one.errors).toBeUndefined();
    expect(one.data?.conversation.messages.edges).toHaveLength(20);
  });

  it("should apply the same limits to subscriptions over WebSocket", async () => {
    const client = wsClient(server.wsUrl, user.token);
    try {
      const deep = client.subscribe(
        `subscription { messageAdded { conversation { messages(first: 100) { edges { node { conversation { messages(first: 100) { edges { node { conversation { id } } } } } } } } } } }`,
      );
      await expect(deep.ended).rejects.toSatisfy((errors: unknown) => {
        const list = errors as { message: string; extensions?: { code?: string } }[];
        return list.some((error) => error.extensions?.code === "BAD_USER_INPUT" && /GRAPHQL_MAX_(DEPTH|COST)/.test(error.message));
      });
    } finally {
      await client.dispose();
    }
  });
});
