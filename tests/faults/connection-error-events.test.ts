import { spawnSync } from "node:child_process";
import { randomUUID } from "node:crypto";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { createDb, poolStats, type Db } from "../../src/db/client.js";
import type { DatabaseDriver } from "../../src/db/settings.js";
import { isDatabaseUnavailable } from "../../src/db/unavailable.js";
import { deferred } from "../chat/support.js";
import { databaseUrl } from "../helpers/db.js";
import { proxyNeonTo, type NeonWsProxy } from "../helpers/neon-proxy.js";
import { ROOT } from "../helpers/process.js";
import { newUser, startTestServer, testAssistant, type TestServer, type TestUser } from "../helpers/server.js";
import { ADD_TASK } from "../realtime/support.js";
import { unavailableViolation } from "./support.js";

const TASKS = "{ tasks(first: 5) { edges { node { id } } } }";
const COMPLETE = "mutation ($id: ID!) { completeTask(id: $id) { id completed } }";

/**
 * Run by the test with spawnSync, so that the test's process (the server's) stands still
 * meanwhile, as a busy or descheduled server does during a database restart: it ends the
 * lock holder's backend (argv[2]), so the server's statement waiting on the lock finishes
 * and its backend goes idle; then it terminates that backend (57P01, as a fast shutdown
 * does) and waits until the backend is gone. Both answers, the statement's ReadyForQuery
 * and the 57P01, are then waiting in one socket buffer for the server to read at once.
 */
const KILL_AFTER_IDLE = `
import pg from "pg";
const [url, holderPid, appName] = process.argv.slice(1);
const admin = new pg.Client({ connectionString: url });
await admin.connect();
const backend = async () =>
  (await admin.query("SELECT pid, state FROM pg_stat_activity WHERE application_name = $1", [appName])).rows[0];
await admin.query("SELECT pg_terminate_backend($1)", [Number(holderPid)]);
let found = await backend();
while (found?.state !== "idle") found = await backend();
await admin.query("SELECT pg_terminate_backend($1)", [found.pid]);
while ((await admin.query("SELECT 1 FROM pg_stat_activity WHERE pid = $1", [found.pid])).rows.length > 0);
await admin.end();
`;

/**
 * The server's pooled connections die (pg_terminate_backend: 57P01, what a
 * database restart sends every backend) in each state a connection can be in:
 * idle in the pool, checked out with a statement running, inside an
 * interactive transaction between two statements, and just handed to a
 * transaction waiting for a connection. node-postgres emits 'error' on a
 * client whose backend dies when no statement is running; with no listener
 * that is an uncaught exception that ends the process. None may reach the
 * process, and every request answers with its data or SERVICE_UNAVAILABLE.
 * Both drivers: the Neon driver is node-postgres over WebSockets (here through
 * a loopback WebSocket-to-TCP relay, as in tests/db/neon.test.ts), with a pool
 * of its own making.
 */
describe.each<DatabaseDriver>(["pg", "neon"])("pooled connections ended in every state (%s driver)", (driver) => {
  const applicationName = `conn-errors-${driver}-${randomUUID()}`;
  const uncaught: unknown[] = [];
  const onUncaught = (error: unknown) => void uncaught.push(error);
  let db: Db;
  let server: TestServer;
  let user: TestUser;
  let admin: pg.Client;
  let holder: pg.Client | undefined;
  let proxy: NeonWsProxy | undefined;

  const killBackends = async () => {
    const { rows } = await admin.query<{ ok: boolean }>("SELECT pg_terminate_backend(pid) AS ok FROM pg_stat_activity WHERE application_name = $1", [
      applicationName,
    ]);
    return rows.filter((row) => row.ok).length;
  };
  const waitForLockWaiter = () =>
    vi.waitFor(
      async () => {
        const { rows } = await admin.query<{ n: number }>(
          "SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name = $1 AND wait_event_type = 'Lock'",
          [applicationName],
        );
        expect(rows[0]?.n, "server connections waiting on the lock").toBe(1);
      },
      { timeout: 10_000, interval: 10 },
    );
  /** A task of the user's, row-locked by a connection of the test's own until that ends. */
  const lockedTask = async () => {
    const added = await user.gql<{ addTask: { id: string } }>(ADD_TASK, { title: "locked" });
    const id = added.data!.addTask.id;
    holder = new pg.Client({ connectionString: databaseUrl() });
    holder.on("error", () => {});
    await holder.connect();
    await holder.query("BEGIN");
    await holder.query("SELECT id FROM tasks WHERE user_id = $1 FOR UPDATE", [user.id]);
    return id;
  };
  const expectServing = async () => {
    // The pool replaces what it lost; the first request may still meet a dead connection.
    await vi.waitFor(async () => expect((await user.gql(TASKS)).status).toBe(200), { timeout: 10_000, interval: 50 });
    expect(uncaught).toEqual([]);
  };

  beforeAll(async () => {
    process.on("uncaughtException", onUncaught);
    const url = new URL(databaseUrl());
    // The test kills this pool's connections only, never another test's.
    url.searchParams.set("application_name", applicationName);
    if (driver === "neon") proxy = await proxyNeonTo(url.toString());
    // One connection, so the test knows which request has it and who waits for it.
    db = createDb({ url: url.toString(), driver, poolSize: 1, connectionTimeoutMs: 5000 });
    // No approval sweep: nothing but the test's requests uses the pool.
    server = await startTestServer({ db, assistant: testAssistant({ approvalSweep: false }) });
    user = await newUser(server, "conn-errors");
    admin = new pg.Client({ connectionString: databaseUrl() });
    await admin.connect();
  });
  afterAll(async () => {
    process.off("uncaughtException", onUncaught);
    await holder?.end().catch(() => {});
    await admin?.end();
    await server?.close();
    await db?.$disconnect();
    await proxy?.close();
  });

  it("should survive a connection ended while idle in the pool", async () => {
    expect((await user.gql(TASKS)).status).toBe(200);
    expect(await killBackends()).toBe(1);
    await expectServing();
  });

  it("should answer SERVICE_UNAVAILABLE for a statement whose connection is ended while it runs", async () => {
    const id = await lockedTask();
    const completing = user.gql(COMPLETE, { id });
    await waitForLockWaiter();
    expect(await killBackends()).toBe(1);
    const response = await completing;
    expect(unavailableViolation(response)).toBeUndefined();
    await holder!.end();
    await expectServing();
  });

  it("should fail an interactive transaction whose connection is ended between two statements as unavailable", async () => {
    const between = deferred();
    const killed = deferred();
    const transaction = db.$transaction(async (tx) => {
      await tx.$queryRaw`SELECT 1`;
      between.resolve();
      await killed.promise;
      await tx.$queryRaw`SELECT 2`;
    });
    const outcome = transaction.then(
      () => "committed",
      (error: unknown) => error,
    );
    await between.promise;
    expect(await killBackends()).toBe(1);
    // The 57P01 arrives while no statement runs: node-postgres emits it on the transaction's client.
    await vi.waitFor(
      async () => {
        const { rows } = await admin.query("SELECT 1 FROM pg_stat_activity WHERE application_name = $1", [applicationName]);
        expect(rows.length, "the killed backend gone").toBe(0);
      },
      { timeout: 5000, interval: 10 },
    );
    killed.resolve();
    const error = await outcome;
    expect(error).not.toBe("committed");
    expect(isDatabaseUnavailable(error), String(error)).toBe(true);
    await expectServing();
  });

  it("should survive a connection ended just as it is handed to a transaction waiting for one", async () => {
    const id = await lockedTask();
    // The pool's one connection runs the completion, held on the lock; a transaction waits for the connection.
    const completing = user.gql(COMPLETE, { id });
    await waitForLockWaiter();
    const waiting = db
      .$transaction(async (tx) => tx.$queryRaw`SELECT 1`)
      .then(
        () => "committed",
        (error: unknown) => error,
      );
    await vi.waitFor(() => expect(poolStats(db)?.waiting, "transactions waiting for the connection").toBe(1), {
      timeout: 5000,
      interval: 5,
    });
    const holderPid = (holder as unknown as { processID: number }).processID;
    // This process stands still while the lock goes, the completion finishes and its backend is ended.
    const run = spawnSync(process.execPath, ["--input-type=module", "-e", KILL_AFTER_IDLE, databaseUrl(), String(holderPid), applicationName], {
      cwd: ROOT,
      encoding: "utf8",
      timeout: 20_000,
    });
    expect(run.status, run.stderr).toBe(0);

    // The completion's answer and the 57P01 are read together: the connection is handed to the
    // waiting transaction, then dies before the transaction has put its own listener on it.
    const response = await completing;
    expect(response.status, JSON.stringify(response)).toBe(200);
    // Acknowledged, so kept.
    const { rows } = await admin.query<{ n: number }>("SELECT count(*)::int AS n FROM tasks WHERE user_id = $1 AND completed", [user.id]);
    expect(rows[0]?.n, "the acknowledged completion").toBe(1);
    // The transaction got the dead connection: its BEGIN fails, as a retryable unavailability.
    const error = await waiting;
    expect(error).not.toBe("committed");
    expect(isDatabaseUnavailable(error), String(error)).toBe(true);
    await expectServing();
  });
});
