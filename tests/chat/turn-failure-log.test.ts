import { randomUUID } from "node:crypto";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { createDb, type Db } from "../../src/db/client.js";
import { cohereAssistant, sendMessage } from "../helpers/chat.js";
import { migratedDatabase } from "../helpers/db.js";
import { startFakeCohere, textReply, type FakeCohere } from "../helpers/fake-cohere.js";
import { capturingLogger, newUser, startTestServer, type TestServer } from "../helpers/server.js";
import { startTcpGate, type TcpGate } from "../helpers/tcp-gate.js";
import { deferred } from "./support.js";

/**
 * How a chat turn's failure is logged, by what failed it: a database the
 * server cannot reach is an outage (warn, with its reason), anything else is
 * a bug (error). The server reaches Postgres through a TCP gate the test
 * shuts while the turn waits for the model, so the turn itself, not the
 * request that opens it, meets the outage.
 */

interface LogLine {
  level: number;
  msg: string;
  turnId?: string;
  reason?: string;
  err?: unknown;
}

describe("a chat turn's failure in the log", () => {
  let database: { url: string; drop: () => Promise<void> };
  let gate: TcpGate;
  let serverDb: Db;
  /** The test's own client, straight to Postgres: it reads what the server stored, gate shut or not. */
  let direct: Db;
  let fake: FakeCohere;
  let server: TestServer;
  const captured = capturingLogger();
  const logged = (turnId: string): LogLine[] => captured.lines.map((line) => JSON.parse(line) as LogLine).filter((line) => line.turnId === turnId);

  beforeAll(async () => {
    // A database of this file's own: the second test puts a trigger on its messages.
    database = await migratedDatabase();
    gate = await startTcpGate(database.url);
    serverDb = createDb({ url: gate.url, driver: "pg", poolSize: 3, connectionTimeoutMs: 1000 });
    direct = createDb({ url: database.url, driver: "pg", poolSize: 2, connectionTimeoutMs: 5000 });
    fake = await startFakeCohere();
    // The LISTEN connection goes straight to Postgres: only the server's queries meet the gate.
    server = await startTestServer({
      db: serverDb,
      listenUrl: database.url,
      logger: captured.logger,
      assistant: cohereAssistant(fake, { logger: captured.logger }),
    });
  }, 60_000);

  afterAll(async () => {
    gate?.open();
    await server?.close();
    await fake?.close();
    await serverDb?.$disconnect();
    await direct?.$disconnect();
    await gate?.close();
    await database?.drop();
  });

  it("should log a turn the database failed mid-way at warn with its reason, never as unexpected, and end it FAILED once the database is back", async () => {
    const user = await newUser(server, "turn-outage");
    const content = `remind me to water the plants ${randomUUID()}`;
    const clientMessageId = `outage-${randomUUID()}`;
    const modelCalled = deferred();
    const databaseGone = deferred();
    fake.enqueue(async () => {
      modelCalled.resolve();
      await databaseGone.promise;
      return textReply("An answer the database never gets.");
    });

    const sending = sendMessage(user, { content, clientMessageId });
    await modelCalled.promise;
    // The user message and the turn are stored; the database goes away while the model answers.
    gate.cut();
    databaseGone.resolve();
    const response = await sending;
    // Answered: the turn's end, its FAILED mark and the lease's return all failed while the gate was shut.
    gate.open();
    expect(response.status).toBe(503);
    expect(response.errors?.[0]?.extensions).toEqual({ code: "SERVICE_UNAVAILABLE", retryable: true });

    const turn = await direct.turn.findFirstOrThrow({ where: { userId: user.id } });
    const lines = logged(turn.id);
    const failures = lines.filter((line) => line.msg.startsWith("a chat turn failed"));
    expect(failures).toEqual([expect.objectContaining({ level: 40, reason: "unreachable", msg: "a chat turn failed: the database is unavailable" })]);
    expect(failures[0]).not.toHaveProperty("err");
    expect(lines.filter((line) => line.level >= 50)).toEqual([]);
    expect(captured.lines.filter((line) => line.includes("failed unexpectedly"))).toEqual([]);
    expect(captured.lines.filter((line) => line.includes(content))).toEqual([]);

    // The end could not be stored: the lease is handed back, in the background, now that the database answers.
    const ended = await vi.waitFor(
      async () => {
        const row = await direct.turn.findUniqueOrThrow({ where: { id: turn.id } });
        expect(row.status).toBe("FAILED");
        return row;
      },
      { timeout: 15_000, interval: 100 },
    );
    expect(ended.stopCode).toBe("INTERRUPTED");
    expect(logged(turn.id).filter((line) => line.level >= 50)).toEqual([]);
    const stored = await direct.message.findMany({ where: { conversationId: turn.conversationId }, orderBy: { seq: "asc" } });
    expect(stored.map(({ role, content: text, clientMessageId: key }) => ({ role, text, key }))).toEqual([
      { role: "user", text: content, key: clientMessageId },
    ]);

    // The message was kept, so the retry the error asks for answers it.
    fake.enqueue(textReply("Watering the plants is on your list."));
    const retried = await sendMessage(user, { content, clientMessageId });
    expect(retried.errors).toBeUndefined();
    expect(retried.data?.sendMessage?.reply?.content).toBe("Watering the plants is on your list.");
  }, 60_000);

  it("should still log a turn that failed for any other reason at error, with the error", async () => {
    const user = await newUser(server, "turn-bug");
    const admin = new pg.Client({ connectionString: database.url });
    await admin.connect();
    try {
      // A fault the code does not expect: Postgres refuses this user's answers (and nothing else).
      await admin.query(`
        CREATE OR REPLACE FUNCTION test_refuse_answer() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
          IF NEW.user_id = '${user.id}' AND NEW.role::text = 'assistant' THEN RAISE EXCEPTION 'test: answers refused'; END IF;
          RETURN NEW;
        END $$;
        CREATE OR REPLACE TRIGGER test_refuse_answer BEFORE INSERT OR UPDATE ON messages FOR EACH ROW EXECUTE FUNCTION test_refuse_answer();`);
      const content = `plan my week ${randomUUID()}`;
      fake.enqueue(textReply("An answer Postgres refuses."));
      const response = await sendMessage(user, { content });
      expect(response.errors?.[0]?.extensions?.code).toBe("INTERNAL_SERVER_ERROR");

      const turn = await direct.turn.findFirstOrThrow({ where: { userId: user.id } });
      const failures = logged(turn.id).filter((line) => line.msg.startsWith("a chat turn failed"));
      expect(failures).toEqual([expect.objectContaining({ level: 50, msg: "a chat turn failed unexpectedly" })]);
      expect(JSON.stringify(failures[0]?.err)).toContain("test: answers refused");
      // The database still answers, so the turn is marked FAILED at once, its message kept.
      expect(turn).toMatchObject({ status: "FAILED", stopCode: "ASSISTANT_UNAVAILABLE" });
      const stored = await direct.message.findMany({ where: { conversationId: turn.conversationId } });
      expect(stored.map(({ role, content: text }) => ({ role, text }))).toEqual([{ role: "user", text: content }]);
    } finally {
      await admin.query("DROP TRIGGER IF EXISTS test_refuse_answer ON messages; DROP FUNCTION IF EXISTS test_refuse_answer()");
      await admin.end();
    }
  }, 30_000);
});
