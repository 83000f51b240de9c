import pg from "pg";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { createDb, type Db } from "../../src/db/client.js";
import { newUserId } from "../helpers/db.js";
import { startOwnCluster, type OwnCluster } from "../helpers/own-cluster.js";
import { capturingLogger, startTestServer, type TestServer } from "../helpers/server.js";
import { tokenFor } from "../helpers/tokens.js";

const TASKS = "{ tasks { edges { node { id title } } } }";
const INTERNALS = /prisma|P1001|P1017|57P01|ECONNREFUSED|127\.0\.0\.1|invocation|\bat .+:\d+:\d+|terminating connection/i;

describe("the database stopped under requests", () => {
  let cluster: OwnCluster;
  let db: Db;
  let server: TestServer;
  let token: string;
  const captured = capturingLogger();

  beforeAll(async () => {
    cluster = await startOwnCluster();
    db = createDb({ url: cluster.url, driver: "pg", poolSize: 3, connectionTimeoutMs: 1000 });
    server = await startTestServer({ db, listenUrl: cluster.url, logger: captured.logger });
    token = await tokenFor(newUserId("outage"));
  }, 120_000);

  afterAll(async () => {
    await server?.close();
    await db?.$disconnect();
    await cluster?.dispose();
  });

  it("should answer the cut request SERVICE_UNAVAILABLE, retryable, and serve again after a restart", async () => {
    const added = await server.request(`mutation { addTask(input: { title: "before the outage" }) { id } }`, {}, token);
    expect(added.errors).toBeUndefined();

    // A trigger of this test's own cluster holds one insert inside Postgres, so it is surely
    // in flight when Postgres goes away (pg_sleep yields to the shutdown's termination).
    const admin = new pg.Client({ connectionString: cluster.url });
    admin.on("error", () => {});
    await admin.connect();
    await admin.query(`
      CREATE OR REPLACE FUNCTION test_slow_insert() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN IF NEW.title = 'slow' THEN PERFORM pg_sleep(30); END IF; RETURN NEW; END $$;
      CREATE OR REPLACE TRIGGER test_slow_insert BEFORE INSERT ON tasks FOR EACH ROW EXECUTE FUNCTION test_slow_insert();`);
    const inFlight = server.request(`mutation { addTask(input: { title: "slow" }) { id } }`, {}, token);
    for (let sleeping = 0; sleeping === 0;) {
      const { rows } = await admin.query<{ n: number }>("SELECT count(*)::int AS n FROM pg_stat_activity WHERE wait_event = 'PgSleep'");
      sleeping = rows[0]?.n ?? 0;
    }
    await admin.end();
    await cluster.stop();

    const cut = await inFlight;
    expect(cut.status).toBe(503);
    expect(cut.errors?.[0]?.extensions).toEqual({ code: "SERVICE_UNAVAILABLE", retryable: true });
    expect(JSON.stringify(cut)).not.toMatch(INTERNALS);

    const whileDown = await server.request(TASKS, {}, token);
    expect(whileDown.status).toBe(503);
    expect(whileDown.errors?.[0]?.extensions?.code).toBe("SERVICE_UNAVAILABLE");
    expect((await fetch(`${server.baseUrl}/ready`)).status).toBe(503);
    expect((await fetch(`${server.baseUrl}/health`)).status).toBe(200);

    await cluster.start();
    // The pool may hand out one connection that died with the old server before it notices: that answer is retryable.
    const refusals: unknown[] = [];
    const after = await vi.waitFor(
      async () => {
        const response = await server.request(TASKS, {}, token);
        if (response.status !== 200) refusals.push(response.errors?.[0]?.extensions?.code);
        expect(response.status, "the status after the restart").toBe(200);
        return response;
      },
      { timeout: 5000, interval: 250 },
    );
    expect(refusals.filter((code) => code !== "SERVICE_UNAVAILABLE")).toEqual([]);
    expect(after.data?.tasks.edges.map((edge: { node: { title: string } }) => edge.node.title)).toEqual(["before the outage"]);
  }, 60_000);

  it("should answer an MCP tool call -32603 with no internal text while the database is down, and log it", async () => {
    await cluster.stop();
    try {
      captured.lines.length = 0;
      const response = await fetch(`${server.baseUrl}/mcp`, {
        method: "POST",
        headers: {
          "content-type": "application/json",
          accept: "application/json, text/event-stream",
          authorization: `Bearer ${token}`,
        },
        body: JSON.stringify({ jsonrpc: "2.0", id: 1, method: "tools/call", params: { name: "list_tasks", arguments: { status: "all" } } }),
      });
      const text = await response.text();
      const body = JSON.parse(text) as { error?: { code: number; message: string } };
      expect(body.error?.code).toBe(-32603);
      expect(body.error?.message).toMatch(/Internal error$/);
      expect(text).not.toMatch(INTERNALS);
      expect(captured.lines.some((line) => line.includes('"level":50') && line.includes("MCP tool call failed"))).toBe(true);
    } finally {
      await cluster.start();
    }
  }, 60_000);
});
