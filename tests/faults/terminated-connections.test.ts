import { setTimeout as sleep } from "node:timers/promises";
import { randomUUID } from "node:crypto";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { createDb, type Db } from "../../src/db/client.js";
import { parseId } from "../../src/lib/ids.js";
import { databaseUrl } from "../helpers/db.js";
import { newUser, startTestServer, type TestServer, type TestUser } from "../helpers/server.js";
import { ADD_TASK } from "../realtime/support.js";
import { record, tally } from "./support.js";

const TASKS = "{ tasks(first: 10) { edges { node { id } } } }";
const ROUNDS = 3;

/**
 * Single connections die (pg_terminate_backend, as a failover or an
 * administrator does) while reads and writes run: every backend of the
 * server's pool is killed, three times. Requests on a killed connection fail
 * only with SERVICE_UNAVAILABLE, the pool replaces what it lost, and every
 * acknowledged write is stored.
 */
describe("pooled connections terminated under load", () => {
  const applicationName = `terminated-${randomUUID()}`;
  let db: Db;
  let server: TestServer;
  let user: TestUser;
  let admin: pg.Client;

  beforeAll(async () => {
    const url = new URL(databaseUrl());
    // The test kills this pool's connections only, never another test's.
    url.searchParams.set("application_name", applicationName);
    db = createDb({ url: url.toString(), driver: "pg", poolSize: 4, connectionTimeoutMs: 2000 });
    server = await startTestServer({ db });
    user = await newUser(server, "terminated");
    admin = new pg.Client({ connectionString: databaseUrl() });
    await admin.connect();
  });
  afterAll(async () => {
    await admin?.end();
    await server?.close();
    await db?.$disconnect();
  });

  it("should fail requests on a killed connection only with SERVICE_UNAVAILABLE and keep every acknowledged write", async () => {
    const reads = tally();
    const writes = tally();
    const created = new Set<string>();
    let loading = true;
    const reader = async () => {
      while (loading) if (!record(reads, await user.gql(TASKS))) await sleep(20);
    };
    const writer = async () => {
      while (loading) {
        const response = await user.gql<{ addTask: { id: string } }>(ADD_TASK, { title: "kept across kills" });
        if (record(writes, response)) created.add(response.data!.addTask.id);
        else await sleep(20);
      }
    };
    const workers = [reader(), reader(), writer(), writer()];

    let killed = 0;
    for (let round = 0; round < ROUNDS; round += 1) {
      const okBefore = reads.ok + writes.ok;
      await vi.waitFor(() => expect(reads.ok + writes.ok, "answered load requests").toBeGreaterThanOrEqual(okBefore + 5), {
        timeout: 20_000,
        interval: 20,
      });
      const { rows } = await admin.query<{ ok: boolean }>(
        "SELECT pg_terminate_backend(pid) AS ok FROM pg_stat_activity WHERE application_name = $1",
        [applicationName],
      );
      killed += rows.filter((row) => row.ok).length;
    }
    const okAfter = reads.ok + writes.ok;
    await vi.waitFor(() => expect(reads.ok + writes.ok, "answered load requests after the last kill").toBeGreaterThanOrEqual(okAfter + 5), {
      timeout: 20_000,
      interval: 20,
    });
    loading = false;
    await Promise.all(workers);

    expect(reads.violations).toEqual([]);
    expect(writes.violations).toEqual([]);
    expect(killed).toBeGreaterThanOrEqual(ROUNDS);
    // Served again afterwards, on fresh connections.
    expect((await user.gql(TASKS)).status).toBe(200);
    const stored = new Set((await db.task.findMany({ where: { userId: user.id }, select: { id: true } })).map((task) => task.id));
    for (const id of created) expect(stored.has(parseId(id, "id", "Task"))).toBe(true);
    if (process.env.FAULT_FIGURES) {
      const figures = {
        requests: reads.attempts + writes.attempts,
        backendsKilled: killed,
        failed503: reads.unavailable + writes.unavailable,
        writesVerified: created.size,
      };
      console.log(`terminated-connections ${JSON.stringify(figures)}`);
    }
  });
});
