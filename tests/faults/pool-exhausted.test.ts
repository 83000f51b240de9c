import pg from "pg";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { createDb, type Db } from "../../src/db/client.js";
import { parseId } from "../../src/lib/ids.js";
import { databaseUrl } from "../helpers/db.js";
import { newUser, startTestServer, type TestServer, type TestUser } from "../helpers/server.js";
import { promiseState } from "../realtime/support.js";
import { INTERNALS } from "./support.js";

const POOL_SIZE = 2;
const COMPLETE = `mutation ($id: ID!) { completeTask(id: $id) { id completed } }`;
const TASKS = "{ tasks(first: 5) { edges { node { id } } } }";
const SEND = `mutation { sendMessage(input: { content: "while the pool is exhausted" }) { userMessage { id } } }`;

/**
 * Every connection of the server's pool is taken by a request waiting on a
 * row lock the test holds. A further request must not queue for ever: after
 * the pool's connection timeout it answers SERVICE_UNAVAILABLE (503,
 * Retry-After, retryable), while the held ones go on; and once the lock goes,
 * everything answers again.
 */
describe("an exhausted pool", () => {
  const applicationName = `pool-exhausted-${process.pid}-${Date.now()}`;
  let db: Db;
  let server: TestServer;
  let user: TestUser;
  let holder: pg.Client;
  let watcher: pg.Client;

  beforeAll(async () => {
    const url = new URL(databaseUrl());
    // So the test finds this pool's connections among everyone else's.
    url.searchParams.set("application_name", applicationName);
    db = createDb({ url: url.toString(), driver: "pg", poolSize: POOL_SIZE, connectionTimeoutMs: 500 });
    server = await startTestServer({ db });
    user = await newUser(server, "pool");
    holder = new pg.Client({ connectionString: databaseUrl() });
    await holder.connect();
    watcher = new pg.Client({ connectionString: databaseUrl() });
    await watcher.connect();
  });
  afterAll(async () => {
    await holder?.end();
    await watcher?.end();
    await server?.close();
    await db?.$disconnect();
  });

  it("should answer SERVICE_UNAVAILABLE with Retry-After after the connection timeout, not hang, and recover once connections are free", async () => {
    const added = await user.gql<{ addTask: { id: string } }>(`mutation { addTask(input: { title: "locked" }) { id } }`);
    const taskId = added.data!.addTask.id;

    await holder.query("BEGIN");
    await holder.query("SELECT id FROM tasks WHERE id = $1 FOR UPDATE", [parseId(taskId, "id", "Task")]);
    const held = Array.from({ length: POOL_SIZE }, () => user.gql(COMPLETE, { id: taskId }));
    await vi.waitFor(
      async () => {
        // Not the holder: inside its transaction pg_stat_activity would be a snapshot of the first look.
        const { rows } = await watcher.query<{ n: number }>(
          "SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name = $1 AND wait_event_type = 'Lock'",
          [applicationName],
        );
        expect(rows[0]?.n, "pooled connections waiting on the lock").toBe(POOL_SIZE);
      },
      { timeout: 20_000, interval: 20 },
    );

    // Plain reads, and sendMessage, whose user message is stored in an interactive transaction
    // (Prisma waits for that one's connection with a timer of its own).
    const queries = [TASKS, TASKS, TASKS, SEND, SEND];
    const attempts = queries.length;
    const answers = await Promise.all(
      queries.map(async (query) => {
        const response = await fetch(server.url, {
          method: "POST",
          headers: { "content-type": "application/json", authorization: `Bearer ${user.token}` },
          body: JSON.stringify({ query }),
        });
        return { status: response.status, retryAfter: response.headers.get("retry-after"), text: await response.text() };
      }),
    );
    // They answered while every connection is still held: a timeout, not the lock going.
    for (const request of held) expect(await promiseState(request)).toBe("pending");
    for (const answer of answers) {
      expect(answer.status).toBe(503);
      expect(answer.retryAfter).toBe("1");
      expect(JSON.parse(answer.text).errors).toEqual([expect.objectContaining({ extensions: { code: "SERVICE_UNAVAILABLE", retryable: true } })]);
      expect(answer.text).not.toMatch(INTERNALS);
    }
    const ready = await fetch(`${server.baseUrl}/ready`);
    expect(ready.status).toBe(503);

    await holder.query("ROLLBACK");
    for (const response of await Promise.all(held)) {
      expect(response.status).toBe(200);
      expect(response.data).toEqual({ completeTask: { id: taskId, completed: true } });
    }
    const after = await user.gql<{ tasks: { edges: unknown[] } }>(TASKS);
    expect(after.status).toBe(200);
    expect(after.data!.tasks.edges).toHaveLength(1);
    expect((await fetch(`${server.baseUrl}/ready`)).status).toBe(200);
    if (process.env.FAULT_FIGURES)
      console.log(`pool-exhausted ${JSON.stringify({ requests: attempts + POOL_SIZE + 1, faults: attempts, held: POOL_SIZE })}`);
  });
});
