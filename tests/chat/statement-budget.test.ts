import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createDb } from "../../src/db/client.js";
import { SEND, cohereAssistant } from "../helpers/chat.js";
import { databaseUrl } from "../helpers/db.js";
import { startFakeCohere, textReply, toolCallReply, type FakeCohere } from "../helpers/fake-cohere.js";
import { newUser, startTestServer, type TestServer, type TestUser } from "../helpers/server.js";
import { startStatementCounter, type StatementCounter } from "../helpers/statement-counter.js";

/**
 * Issue 26: a chat turn with one tool call sends at most ten statements to
 * Postgres. Counted at the wire (tests/helpers/statement-counter.ts) between
 * the API's pool and the database: every statement the server sends on the
 * pool during the sendMessage request, BEGIN and COMMIT included, the reads
 * that build the payload included. The LISTEN connection does not go through
 * the counter (it sends nothing during a turn with no subscriber), and the
 * approval sweep is off, so only the turn's own statements are seen.
 */
const BUDGET = 10;

describe("the statement budget of a chat turn", () => {
  let fake: FakeCohere;
  let counter: StatementCounter;
  let server: TestServer;
  let user: TestUser;

  beforeAll(async () => {
    fake = await startFakeCohere();
    counter = await startStatementCounter(databaseUrl());
    const db = createDb({ url: counter.url, driver: "pg", poolSize: 5, connectionTimeoutMs: 5000 });
    server = await startTestServer({
      db,
      listenUrl: databaseUrl(),
      transport: { kind: "postgres" },
      // On, as in production (its statement is part of a turn's cost), but never the limit here.
      assistant: cohereAssistant(fake, { approvalSweep: false, rateLimit: { perMinute: 1000, burst: 1000 } }),
    });
    user = await newUser(server, "budget");
    // One turn first, not counted: the server's start-up sweep and the first connections are behind it.
    fake.enqueue(toolCallReply([{ name: "add_task", args: { title: "Warm-up" } }]), textReply("Added Warm-up."));
    const warmUp = await user.gql(SEND, { input: { content: "Add warm-up" } });
    expect(warmUp.errors).toBeUndefined();
  });
  afterAll(async () => {
    await server?.close();
    await server?.db.$disconnect();
    await counter?.close();
    await fake?.close();
  });

  /** Sends one message whose turn calls `tool` (add_task by default) once, then answers; returns the statements the turn sent. */
  async function countedTurn(
    input: Record<string, unknown>,
    title: string,
    tool: { name: string; args: Record<string, unknown> } = { name: "add_task", args: { title } },
  ): Promise<{ statements: string[]; conversationId: string; result: Record<string, unknown> }> {
    fake.enqueue(toolCallReply([tool]), textReply(`Added ${title}.`));
    counter.reset();
    const response = await user.gql(SEND, { input });
    const statements = [...counter.statements];
    expect(response.errors).toBeUndefined();
    const payload = response.data!.sendMessage;
    expect(payload.reply.content).toBe(`Added ${title}.`);
    expect(payload.toolCalls).toHaveLength(1);
    expect(payload.toolCalls[0].result).toMatchObject({ title });
    expect(payload.messages.map((m: { role: string }) => m.role)).toEqual(["USER", "ASSISTANT", "TOOL", "ASSISTANT"]);
    return { statements, conversationId: payload.conversation.id, result: payload.toolCalls[0].result };
  }

  function listed(statements: readonly string[]): string {
    return statements.map((sql, index) => `${index + 1}. ${sql.slice(0, 200) + (sql.length > 200 ? " … " + sql.slice(-300) : "")}`).join("\n");
  }

  it("should send at most ten statements for a turn with one tool call in a new conversation", async () => {
    const { statements } = await countedTurn({ content: "Add milk" }, "Milk");

    if (process.env.SHOW_SQL) console.log(listed(statements));
    expect(statements.length, listed(statements)).toBeLessThanOrEqual(BUDGET);
  });

  it("should send at most ten statements for a turn with one tool call in an existing conversation, with a clientMessageId", async () => {
    const first = await countedTurn({ content: "Add bread" }, "Bread");

    const { statements } = await countedTurn(
      { conversationId: first.conversationId, content: "Add butter", clientMessageId: `budget-${Date.now()}` },
      "Butter",
    );

    if (process.env.SHOW_SQL) console.log(listed(statements));
    expect(statements.length, listed(statements)).toBeLessThanOrEqual(BUDGET);
  });

  /** The statements that read the user's time zone (user_settings), whatever the form. */
  function zoneReads(statements: readonly string[]): string[] {
    return statements.filter((sql) => sql.includes("user_settings"));
  }

  it("should read the user's time zone in the statement that opens the turn, not in one of its own", async () => {
    const { statements } = await countedTurn({ content: "Add jam" }, "Jam");

    const opening = statements.findIndex((sql) => sql.includes("INSERT INTO messages"));
    expect(zoneReads(statements), listed(statements)).toEqual([statements[opening]]);
  });

  it("should read the user's time zone once in a turn whose add_task sets a due time", async () => {
    const { statements, result } = await countedTurn({ content: "Add tea at five" }, "Tea", {
      name: "add_task",
      args: { title: "Tea", due: "2026-12-08T17:00" },
    });

    expect(result).toMatchObject({ title: "Tea", due: "2026-12-08T17:00:00+00:00" });
    expect(zoneReads(statements), listed(statements)).toHaveLength(1);
    expect(statements.length, listed(statements)).toBeLessThanOrEqual(BUDGET);
  });

  it("should read the user's time zone once in a turn whose update_task moves the due time", async () => {
    const added = await countedTurn({ content: "Add scones" }, "Scones");

    const { statements, result } = await countedTurn({ conversationId: added.conversationId, content: "Scones at six" }, "Scones", {
      name: "update_task",
      args: { task_id: added.result.id, due: "2026-12-08T18:00" },
    });

    expect(result).toMatchObject({ title: "Scones", due: "2026-12-08T18:00:00+00:00" });
    expect(zoneReads(statements), listed(statements)).toHaveLength(1);
    expect(statements.length, listed(statements)).toBeLessThanOrEqual(BUDGET);
  });

  /** A turn that calls list_tasks once; the statements it sent and the tool's result. */
  async function listedTurn(lister: TestUser): Promise<{ statements: string[]; result: { tasks: unknown[]; count: number; truncated: boolean } }> {
    fake.enqueue(toolCallReply([{ name: "list_tasks", args: { status: "all" } }]), textReply("Here they are."));
    counter.reset();
    const response = await lister.gql(SEND, { input: { content: "What are my tasks?" } });
    const statements = [...counter.statements];
    expect(response.errors).toBeUndefined();
    expect(response.data!.sendMessage.toolCalls).toHaveLength(1);
    return { statements, result: response.data!.sendMessage.toolCalls[0].result };
  }

  it("should learn whether list_tasks left tasks out from one row more, with no count of every match", async () => {
    const lister = await newUser(server, "budget-list");
    const titles = Array.from({ length: 51 }, (_, index) => `Listed ${index}`);
    await server.db.task.createMany({ data: titles.map((title) => ({ userId: lister.id, title })) });

    const over = await listedTurn(lister);
    expect(over.result).toMatchObject({ count: 50, truncated: true });
    expect(over.result.tasks).toHaveLength(50);
    expect(
      over.statements.filter((sql) => /count\(/i.test(sql)),
      listed(over.statements),
    ).toEqual([]);

    // Exactly as many as it shows: nothing left out.
    await server.db.task.deleteMany({ where: { userId: lister.id, title: "Listed 0" } });
    const exact = await listedTurn(lister);
    expect(exact.result).toMatchObject({ count: 50, truncated: false });
    expect(exact.result.tasks).toHaveLength(50);
  });
});
