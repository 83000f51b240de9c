import pg from "pg";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { WebSocket } from "ws";
import { parseId } from "../../src/lib/ids.js";
import { databaseUrl } from "../helpers/db.js";
import { newUser, startTestServer, type TestServer, type TestUser } from "../helpers/server.js";
import { wsClient } from "../helpers/ws-client.js";
import { readSse, TASK_CHANGED, within } from "../realtime/support.js";

describe("stop() drains", () => {
  let server: TestServer;
  let user: TestUser;
  let holder: pg.Client;

  beforeAll(async () => {
    server = await startTestServer({ shutdownGraceMs: 10_000 });
    user = await newUser(server, "drain");
    holder = new pg.Client({ connectionString: databaseUrl() });
    await holder.connect();
  });
  afterAll(async () => {
    await holder?.end();
    await server?.close();
  });

  it("should refuse new work at once, end subscriptions properly and let accepted requests finish", async () => {
    const added = await user.gql<{ addTask: { id: string } }>(`mutation { addTask(input: { title: "in flight" }) { id } }`);
    const taskId = added.data!.addTask.id;

    const before = server.app.realtime.establishedCount;
    const ws = wsClient(server.wsUrl, user.token);
    const wsSub = ws.subscribe(TASK_CHANGED);
    const sse = readSse(
      await fetch(server.url, {
        method: "POST",
        headers: { accept: "text/event-stream", "content-type": "application/json", authorization: `Bearer ${user.token}` },
        body: JSON.stringify({ query: TASK_CHANGED }),
      }),
    );
    await vi.waitFor(() => expect(server.app.realtime.establishedCount, "established subscriptions").toBeGreaterThanOrEqual(before + 2), {
      timeout: 10_000,
      interval: 10,
    });

    // An accepted request that is still working when the drain begins (it waits on a row lock).
    await holder.query("BEGIN");
    await holder.query("SELECT id FROM tasks WHERE id = $1 FOR UPDATE", [parseId(taskId, "id", "Task")]);
    const accepted = user.gql(`mutation ($id: ID!) { completeTask(id: $id) { id completed } }`, { id: taskId });
    await vi.waitFor(
      async () => {
        const { rows } = await holder.query<{ n: number }>("SELECT count(*)::int AS n FROM pg_stat_activity WHERE wait_event_type = 'Lock'");
        expect(rows[0]?.n ?? 0, "connections waiting on a lock").toBeGreaterThan(0);
      },
      { timeout: 15_000, interval: 10 },
    );

    const stopped = server.app.stop();

    const ready = await fetch(`${server.baseUrl}/ready`);
    expect(ready.status).toBe(503);
    expect((await fetch(`${server.baseUrl}/health`)).status).toBe(200);
    const refused = await user.gql(`{ tasks { edges { node { id } } } }`);
    expect(refused.status).toBe(503);
    expect(refused.errors?.[0]?.extensions).toEqual({ code: "SERVICE_UNAVAILABLE", retryable: true });
    const upgrade = await new Promise<number>((resolve) => {
      const socket = new WebSocket(server.wsUrl, "graphql-transport-ws");
      socket.on("unexpected-response", (_req, res) => resolve(res.statusCode ?? 0));
      socket.on("open", () => resolve(101));
      socket.on("error", () => {});
    });
    expect(upgrade).toBe(503);

    expect((await within(ws.closed, 5000, "the WebSocket close")).code).toBe(1001);
    await within(sse.ended, 5000, "the SSE stream to complete");
    expect(sse.completed()).toBe(true);

    // The accepted request is still running, and gets its whole answer once the lock goes.
    await holder.query("ROLLBACK");
    const answer = await accepted;
    expect(answer.status).toBe(200);
    expect(answer.data).toEqual({ completeTask: { id: taskId, completed: true } });
    expect(await stopped).toBe(true);
    wsSub.dispose();
  });
});
