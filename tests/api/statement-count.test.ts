import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Db } from "../../src/db/client.js";
import { appendMessages, type NewMessage } from "../../src/domain/messages.js";
import { testDb } from "../helpers/db.js";
import { newUser, startTestServer, testAssistant, type TestServer, type TestUser } from "../helpers/server.js";

const CONVERSATIONS = 50;
const MESSAGES_PER_CONVERSATION = 25;
const LAST = 20;
/**
 * Measured: one SELECT. With Prisma's relationJoins, the messages come from a
 * LATERAL join limited per conversation, so a long conversation costs 20 rows,
 * not all of its messages sliced in memory.
 */
const MAX_STATEMENTS = 1;

const QUERY = `query Conversations($first: Int!, $last: Int!) {
  conversations(first: $first) {
    edges { node { id title messages(last: $last) { edges { node { id seq content } } } } }
  }
}`;

interface ConversationsData {
  conversations: {
    edges: {
      node: {
        id: string;
        title: string | null;
        messages: { edges: { node: { id: string; seq: number; content: string } }[] };
      };
    }[];
  };
}

describe("conversations with their messages", () => {
  const statements: string[] = [];
  let db: Db;
  let server: TestServer;
  let user: TestUser;

  beforeAll(async () => {
    db = testDb({ onQuery: (sql) => statements.push(sql) });
    // No approval sweep: its timer (woken by other files' approvals in the shared database) would add statements to the count.
    server = await startTestServer({ db, assistant: testAssistant({ approvalSweep: false }) });
    user = await newUser(server, "statement-count");
    for (let c = 0; c < CONVERSATIONS; c++) {
      const conversation = await db.conversation.create({ data: { userId: user.id, title: `conversation ${c}` } });
      const messages: NewMessage[] = Array.from({ length: MESSAGES_PER_CONVERSATION }, (_, m) => ({
        role: m % 2 === 0 ? "user" : "assistant",
        content: `conversation ${c} message ${m + 1}`,
      }));
      await db.$transaction((tx) => appendMessages(tx, user.id, conversation.id, messages));
    }
  });

  afterAll(async () => {
    await server?.close();
    await db?.$disconnect();
  });

  async function measure(first: number) {
    statements.length = 0;
    const response = await user.gql<ConversationsData>(QUERY, { first, last: LAST });
    return { response, count: statements.length, statements: [...statements] };
  }

  it("should see the statements Prisma sends through the driver adapter", async () => {
    statements.length = 0;
    await db.conversation.count({ where: { userId: user.id } });
    expect(statements).toHaveLength(1);
    expect(statements[0]).toMatch(/^SELECT COUNT/i);
  });

  it("should return 50 conversations with their newest 20 messages in ascending seq order", async () => {
    const { response } = await measure(CONVERSATIONS);
    expect(response.errors).toBeUndefined();
    const edges = response.data?.conversations.edges ?? [];
    expect(edges).toHaveLength(CONVERSATIONS);
    const titles = new Set(edges.map((edge) => edge.node.title));
    expect(titles.size).toBe(CONVERSATIONS);

    const newestSeqs = Array.from({ length: LAST }, (_, i) => MESSAGES_PER_CONVERSATION - LAST + 1 + i);
    for (const { node } of edges) {
      const messages = node.messages.edges.map((edge) => edge.node);
      expect(messages.map((message) => message.seq)).toEqual(newestSeqs);
      // Each message belongs to the conversation it is listed under.
      expect(messages.map((message) => message.content)).toEqual(newestSeqs.map((seq) => `${node.title} message ${seq}`));
      expect(new Set(messages.map((message) => message.id)).size).toBe(LAST);
    }
  });

  it("should run the same small number of SQL statements for 10 conversations as for 50", async () => {
    const fifty = await measure(CONVERSATIONS);
    expect(fifty.response.errors).toBeUndefined();
    expect(fifty.response.data?.conversations.edges).toHaveLength(CONVERSATIONS);

    const ten = await measure(10);
    expect(ten.response.errors).toBeUndefined();
    expect(ten.response.data?.conversations.edges).toHaveLength(10);
    for (const { node } of ten.response.data?.conversations.edges ?? []) {
      expect(node.messages.edges).toHaveLength(LAST);
    }

    expect(fifty.count).toBeGreaterThan(0);
    expect(fifty.count).toBeLessThanOrEqual(MAX_STATEMENTS);
    expect(ten.count).toBe(fifty.count);
    const messagesQuery = fifty.statements.find((sql) => sql.includes('"messages"'));
    expect(messagesQuery).toMatch(/JOIN LATERAL[\s\S]*LIMIT/);
  });
});
