import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Db } from "../../src/db/client.js";
import { parseId } from "../../src/lib/ids.js";
import { databaseUrl, testDb } from "../helpers/db.js";
import { capturingLogger, newUser, startTestServer, type TestServer, type TestUser } from "../helpers/server.js";

describe("statement_timeout", () => {
  let db: Db;
  let server: TestServer;
  let user: TestUser;
  const captured = capturingLogger();

  beforeAll(async () => {
    db = testDb({ statementTimeoutMs: 300 });
    server = await startTestServer({ db, logger: captured.logger });
    user = await newUser(server, "statement-timeout");
  });
  afterAll(async () => {
    await server?.close();
    await db?.$disconnect();
  });

  it("should be set on every pooled connection", async () => {
    const rows = await Promise.all(
      Array.from({ length: 5 }, () => db.$transaction((tx) => tx.$queryRaw<{ statement_timeout: string }[]>`SHOW statement_timeout`)),
    );
    for (const [row] of rows) expect(row?.statement_timeout).toBe("300ms");
  });

  it("should stop a statement that would otherwise wait for minutes, and keep serving", async () => {
    const added = await user.gql<{ addTask: { id: string } }>(`mutation { addTask(input: { title: "locked" }) { id } }`);
    const id = added.data!.addTask.id;
    // Another session holds the row, as a stuck transaction would; the mutation must not wait for it.
    const holder = new pg.Client({ connectionString: databaseUrl() });
    await holder.connect();
    try {
      await holder.query("BEGIN");
      await holder.query("SELECT id FROM tasks WHERE id = $1 FOR UPDATE", [parseId(id, "id", "Task")]);
      captured.lines.length = 0;
      const stuck = await user.gql(`mutation ($id: ID!) { completeTask(id: $id) { id completed } }`, { id });
      // Not a bug but a database that could not answer in time: the documented retryable 503, as for an outage.
      expect(stuck.status).toBe(503);
      expect(stuck.errors?.[0]?.extensions).toEqual({ code: "SERVICE_UNAVAILABLE", retryable: true });
      expect(stuck.errors?.[0]?.message).toBe("The service is temporarily unavailable; retry shortly");
      const logged = captured.lines.map((line) => JSON.parse(line) as { level: number; msg?: string; reason?: string });
      const timedOut = captured.lines.filter((line) => line.includes("57014"));
      expect(timedOut.length).toBeGreaterThan(0);
      expect(timedOut.every((line) => (JSON.parse(line) as { level: number }).level === 40)).toBe(true);
      expect(logged.filter((line) => line.level >= 50)).toEqual([]);
    } finally {
      await holder.query("ROLLBACK");
      await holder.end();
    }
    const after = await user.gql(`mutation ($id: ID!) { completeTask(id: $id) { completed } }`, { id });
    expect(after.data).toEqual({ completeTask: { completed: true } });
  });
});
