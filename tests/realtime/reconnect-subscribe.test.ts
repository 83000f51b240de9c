import type pg from "pg";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { databaseUrl } from "../helpers/db.js";
import { newUser, onNatsTransport } from "../helpers/server.js";
import type { QueuedSubscription } from "../helpers/ws-client.js";
import { adminClient, killListener, live, nextEvent, nextTaskChange, startLiveServer, TASK_CHANGED, type LiveServer } from "./support.js";
import { startTcpGate, type TcpGate } from "../helpers/tcp-gate.js";

/**
 * Subscriptions that start while the LISTEN connection is coming back. The
 * gate holds every reply from Postgres for 150 ms, so each step of the
 * reconnect (connect, LISTEN, read the database time) is a slow round trip,
 * and a new user subscribes at each of them: once the connection is relayed,
 * once its LISTEN has been sent, once its time query has been sent, and once
 * it is back. Whenever each one joined, its channel must be LISTENed.
 */
// The postgres transport's own LISTEN connection: under REALTIME_TRANSPORT=nats there is none (nats-*.test.ts cover its outages).
describe.skipIf(onNatsTransport())("subscribing while the LISTEN connection reconnects", () => {
  let gate: TcpGate;
  let server: LiveServer;
  let admin: pg.Client;

  beforeAll(async () => {
    gate = await startTcpGate(databaseUrl());
    server = await startLiveServer({ listenUrl: gate.url });
    admin = await adminClient(databaseUrl());
  });
  afterAll(async () => {
    gate.open();
    gate.delayReplies(0);
    await server.close();
    await gate.close();
    await admin.end();
  });

  /** The last statement the listener's new backend (behind the gate) was sent, or "" before its first. */
  async function listenerStatement(): Promise<string | undefined> {
    const { rows } = await admin.query<{ query: string }>(
      `SELECT query FROM pg_stat_activity
        WHERE application_name = 'todo-api-listener' AND datname = current_database() AND client_port = ANY($1::int[])`,
      [gate.upstreamPorts()],
    );
    return rows[0]?.query;
  }

  it("should deliver the next commit of a user who subscribed at any step of a reconnect", async () => {
    // Someone already listening, so the reconnect has LISTENs of its own to send.
    const anchor = await newUser(server, "anchor");
    const anchorTasks = await live(server, server.connect(anchor.token), TASK_CHANGED);
    const steps = ["connected", "LISTEN sent", "time query sent", "back"] as const;
    const users = await Promise.all(steps.map((step) => newUser(server, step.replaceAll(" ", "-"))));
    const clients = users.map((user) => server.connect(user.token));
    // Every socket is acknowledged before the outage: subscribing is then one message.
    await Promise.all(clients.map((client) => new Promise<void>((resolve) => client.client.on("connected", () => resolve()))));

    await killListener(server, gate, admin);
    gate.delayReplies(150);
    const before = server.app.realtime.establishedCount;
    const reconnected = nextEvent(server.app.transport, "reconnected");
    gate.open();
    const subs: QueuedSubscription[] = [];
    const subscribe = (index: number) => subs.push(clients[index]!.subscribe(TASK_CHANGED));

    await vi.waitFor(async () => expect(await listenerStatement(), "the statement of the listener's backend behind the gate").toBeDefined(), {
      timeout: 15_000,
      interval: 10,
    });
    subscribe(0);
    await vi.waitFor(async () => expect(await listenerStatement(), "the listener's statement").toMatch(/^LISTEN/i), {
      timeout: 15_000,
      interval: 10,
    });
    subscribe(1);
    await vi.waitFor(async () => expect(await listenerStatement(), "the listener's statement").toMatch(/^SELECT now\(\)/i), {
      timeout: 15_000,
      interval: 10,
    });
    subscribe(2);
    await reconnected;
    subscribe(3);
    await vi.waitFor(() => expect(server.app.realtime.establishedCount, "established subscriptions").toBeGreaterThanOrEqual(before + subs.length), {
      timeout: 10_000,
      interval: 10,
    });
    gate.delayReplies(0);

    for (const [index, user] of users.entries()) {
      await admin.query(`INSERT INTO tasks (user_id, title) VALUES ($1, $2)`, [user.id, `after: ${steps[index]}`]);
    }
    for (const [index, sub] of subs.entries()) {
      expect(await nextTaskChange(sub, 5000).catch(() => `nothing for the user who joined when ${steps[index]}`)).toMatchObject({
        kind: "CREATED",
        task: { title: `after: ${steps[index]}` },
      });
    }
    await admin.query(`INSERT INTO tasks (user_id, title) VALUES ($1, 'still there')`, [anchor.id]);
    expect(await nextTaskChange(anchorTasks)).toMatchObject({ kind: "CREATED", task: { title: "still there" } });
    for (const sub of [...subs, anchorTasks]) sub.dispose();
  });
});
