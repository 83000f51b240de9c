import { setTimeout as sleep } from "node:timers/promises";
import { randomUUID } from "node:crypto";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { createDb, type Db } from "../../src/db/client.js";
import { parseId } from "../../src/lib/ids.js";
import { cohereAssistant } from "../helpers/chat.js";
import { startFakeCohere, textReply, type FakeCohere } from "../helpers/fake-cohere.js";
import { startOwnCluster, type OwnCluster } from "../helpers/own-cluster.js";
import { newUser, startTestServer, type TestServer, type TestUser } from "../helpers/server.js";
import { wsClient, type QueuedSubscription, type TestWsClient } from "../helpers/ws-client.js";
import { ADD_TASK, MESSAGE_ADDED, TASK_CHANGED, UPDATE_TASK, type MessageView, type TaskChangeView } from "../realtime/support.js";
import { deferred } from "../chat/support.js";
import { INTERNALS, record, tally, type Tally } from "./support.js";

const SEND = /* GraphQL */ `
  mutation Send($input: SendMessageInput!) {
    sendMessage(input: $input) {
      userMessage {
        id
      }
      reply {
        id
        content
      }
      turn {
        id
        status
      }
    }
  }
`;
const TASKS = "{ tasks(first: 20) { edges { node { id title } } } }";

interface SendView {
  userMessage: { id: string };
  reply: { id: string; content: string } | null;
  turn: { id: string; status: string };
}

/** A title that carries its write's version: the n-th update of a task is titled `v<n>`. */
function versionOf(title: string): number {
  const match = /^v(\d+)$/.exec(title);
  if (!match) throw new Error(`not a versioned title: ${title}`);
  return Number(match[1]);
}

/**
 * Postgres (a cluster of the test's own) is stopped and started again while
 * reads, writes, chat turns and subscribers are all busy. Requests caught by
 * the outage may fail, but only as SERVICE_UNAVAILABLE; what was acknowledged
 * is in the database afterwards; and every subscriber ends up with exactly the
 * committed events: each task at its committed version, versions only rising,
 * and each settled message once.
 */
const HELD = "held across the outage";

describe("Postgres restarted under mixed load", () => {
  const held = deferred();
  let cluster: OwnCluster;
  let db: Db;
  let fake: FakeCohere;
  let server: TestServer;
  let user: TestUser;
  const clients: TestWsClient[] = [];

  beforeAll(async () => {
    cluster = await startOwnCluster();
    db = createDb({ url: cluster.url, driver: "pg", poolSize: 5, connectionTimeoutMs: 2000 });
    fake = await startFakeCohere();
    // Each answer streams for a while, so turns are surely in flight when Postgres goes.
    fake.setFallback((request) => {
      const last = request.body.messages.at(-1) as { content?: unknown } | undefined;
      // One turn is held mid-answer until Postgres has gone, so at least one is surely cut half-written.
      const gate = last?.content === HELD ? { afterDeltas: 2, until: held.promise } : undefined;
      return textReply("Noted, and here is a short answer streamed word by word.", { eventDelayMs: 15, gate });
    });
    // A long turn time, so a lease left behind would be held for 90 s: far longer than the test waits for it to go.
    server = await startTestServer({ db, listenUrl: cluster.url, assistant: cohereAssistant(fake, { turnTimeoutMs: 60_000 }) });
    user = await newUser(server, "restart");
  }, 120_000);

  afterAll(async () => {
    await Promise.all(clients.map((client) => client.dispose()));
    await server?.close();
    await db?.$disconnect();
    await fake?.close();
    await cluster?.dispose();
  });

  it("should fail in-flight requests only with SERVICE_UNAVAILABLE, keep every acknowledged write and deliver every committed event once", async () => {
    // Subscribers: three sockets, each with both feeds, in place before the load.
    const taskSubs: QueuedSubscription[] = [];
    const messageSubs: QueuedSubscription[] = [];
    for (let i = 0; i < 3; i += 1) {
      const client = wsClient(server.wsUrl, user.token);
      clients.push(client);
      const before = server.app.realtime.establishedCount;
      taskSubs.push(client.subscribe(TASK_CHANGED));
      messageSubs.push(client.subscribe(MESSAGE_ADDED));
      await vi.waitFor(() => expect(server.app.realtime.establishedCount, "established subscriptions").toBeGreaterThanOrEqual(before + 2), {
        timeout: 10_000,
        interval: 10,
      });
    }

    const reads = tally();
    const creates = tally();
    const updates = tally();
    const sends = tally();
    /** Acknowledged writes: created task ids, the last acknowledged version of each updated task, finished turns. */
    const created = new Set<string>();
    const ackedVersion = new Map<string, number>();
    const ackedSends: SendView[] = [];
    const failedSends: { clientMessageId: string; content: string }[] = [];

    let phase: "before" | "down" | "after" = "before";
    const okAfter = new Map<Tally, number>();
    const markOk = (into: Tally) => {
      if (phase === "after") okAfter.set(into, (okAfter.get(into) ?? 0) + 1);
    };
    let loading = true;
    // A client told 503 waits a little before it tries again, as Retry-After asks (shorter here).
    const pause = () => sleep(50);

    const reader = async () => {
      while (loading) {
        if (record(reads, await user.gql(TASKS))) markOk(reads);
        else await pause();
      }
    };
    const creator = async (worker: number) => {
      for (let n = 0; loading; n += 1) {
        const response = await user.gql<{ addTask: { id: string } }>(ADD_TASK, { title: `v0`, description: `creator ${worker} #${n}` });
        if (!record(creates, response)) {
          await pause();
          continue;
        }
        markOk(creates);
        created.add(response.data!.addTask.id);
      }
    };
    const updater = async () => {
      // Its own task, renamed v1, v2, … one after another.
      let task: string | undefined;
      while (loading && task === undefined) {
        const response = await user.gql<{ addTask: { id: string } }>(ADD_TASK, { title: "v0", description: "updated one" });
        if (record(creates, response)) task = response.data!.addTask.id;
        else await pause();
      }
      if (task === undefined) return;
      created.add(task);
      for (let version = 1; loading; version += 1) {
        const response = await user.gql(UPDATE_TASK, { input: { id: task, title: `v${version}` } });
        if (!record(updates, response)) {
          await pause();
          continue;
        }
        markOk(updates);
        ackedVersion.set(task, version);
      }
    };
    const sender = async (worker: number) => {
      for (let n = 0; loading; n += 1) {
        const input = { content: `message ${worker}.${n}`, clientMessageId: `cm-${randomUUID()}` };
        const response = await user.gql<{ sendMessage: SendView }>(SEND, { input });
        if (!record(sends, response)) {
          failedSends.push(input);
          await pause();
          continue;
        }
        markOk(sends);
        ackedSends.push(response.data!.sendMessage);
      }
    };
    const workers = [reader(), creator(1), creator(2), updater(), updater(), sender(1), sender(2)];

    const all = [reads, creates, updates, sends];
    await vi.waitFor(
      () => expect(Math.min(...all.map((kind) => kind.ok)), "successes of the least successful kind before the outage").toBeGreaterThanOrEqual(3),
      { timeout: 20_000, interval: 20 },
    );
    const heldInput = { content: HELD, clientMessageId: `cm-${randomUUID()}` };
    const heldSend = user.gql<{ sendMessage: SendView }>(SEND, { input: heldInput });
    await vi.waitFor(
      async () =>
        expect(
          await db.message.count({ where: { userId: user.id, role: "assistant", status: "STREAMING", conversation: { title: HELD } } }),
          "the held answer's STREAMING rows",
        ).toBeGreaterThan(0),
      { timeout: 20_000, interval: 20 },
    );
    phase = "down";
    await cluster.stop();
    held.resolve();
    expect(record(sends, await heldSend)).toBe(false);
    failedSends.push(heldInput);
    // While it is down every kind of request is refused, and the listener knows.
    const failedBefore = all.map((kind) => kind.unavailable);
    await vi.waitFor(
      () =>
        expect(
          Math.min(...all.map((kind, i) => kind.unavailable - failedBefore[i]!)),
          "failures of the least failed kind while Postgres is down",
        ).toBeGreaterThan(0),
      { timeout: 20_000, interval: 20 },
    );
    expect(server.app.transport.connected).toBe(false);
    // Over graphql-ws too, the same answer, without the HTTP-only extensions (status, Retry-After).
    const wsQuery = wsClient(server.wsUrl, user.token);
    clients.push(wsQuery);
    const overWs = await wsQuery.subscribe(TASKS).next();
    expect(overWs.errors?.map((error) => error.extensions)).toEqual([{ code: "SERVICE_UNAVAILABLE", retryable: true }]);
    expect(JSON.stringify(overWs)).not.toMatch(INTERNALS);
    await cluster.start();
    phase = "after";
    await vi.waitFor(
      () =>
        expect(
          Math.min(...all.map((kind) => okAfter.get(kind) ?? 0)),
          "successes of the least successful kind after the restart",
        ).toBeGreaterThanOrEqual(3),
      { timeout: 20_000, interval: 20 },
    );
    loading = false;
    await Promise.all(workers);

    for (const kind of all) expect(kind.violations).toEqual([]);
    expect(sends.unavailable + creates.unavailable + updates.unavailable + reads.unavailable).toBeGreaterThan(0);

    // The turns the outage cut handed their leases back once the database was back (they could not end
    // while it was away), so the retries below resume them at once instead of waiting for the leases to expire.
    expect(server.app.assistant.runningCount).toBe(0);
    const heldLeases = async () =>
      (await db.conversation.count({ where: { userId: user.id, turnLeaseId: { not: null } } })) +
      (await db.turn.count({ where: { userId: user.id, status: "RUNNING" } }));
    await vi.waitFor(async () => expect(await heldLeases(), "leases the cut turns still hold").toBe(0), { timeout: 20_000, interval: 20 });
    const cutTurns = await db.turn.count({ where: { userId: user.id, status: "FAILED" } });
    expect(cutTurns).toBeGreaterThanOrEqual(1);

    // Requests after the restart succeed, each kind, including a retry of every send the outage cut.
    expect((await user.gql(TASKS)).status).toBe(200);
    // Every send the outage cut is retried with its clientMessageId: the ones whose turn had started resume it.
    // Four at a time, as a few clients would; a pool busy with the others' turns says so (SERVICE_UNAVAILABLE) and is asked again.
    const retryOnce = async (input: { content: string; clientMessageId: string }) => {
      for (let attempt = 1; ; attempt += 1) {
        const retry = await user.gql<{ sendMessage: SendView }>(SEND, { input });
        if (retry.status !== 503 || attempt === 5) return retry;
        expect(retry.errors?.[0]?.extensions).toEqual({ code: "SERVICE_UNAVAILABLE", retryable: true });
        await sleep(200);
      }
    };
    for (let from = 0; from < failedSends.length; from += 4) {
      for (const retry of await Promise.all(failedSends.slice(from, from + 4).map(retryOnce))) {
        expect(retry.errors).toBeUndefined();
        expect(retry.data!.sendMessage.turn.status).toBe("COMPLETED");
        ackedSends.push(retry.data!.sendMessage);
      }
    }
    // One user message and one turn per clientMessageId, whatever was cut and retried.
    expect(await db.message.count({ where: { userId: user.id, role: "user" } })).toBe(new Set(ackedSends.map((send) => send.userMessage.id)).size);
    expect(await db.turn.count({ where: { userId: user.id, status: { not: "COMPLETED" } } })).toBe(0);

    // Every acknowledged write is in the database.
    const admin = new pg.Client({ connectionString: cluster.url });
    await admin.connect();
    try {
      const { rows: taskRows } = await admin.query<{ id: string; title: string }>("SELECT id::text, title FROM tasks WHERE user_id = $1", [user.id]);
      const stored = new Map(taskRows.map((row) => [row.id, row.title]));
      for (const id of created) expect(stored.has(parseId(id, "id", "Task"))).toBe(true);
      for (const [id, version] of ackedVersion) {
        // A later update that was cut may have committed too; an acknowledged one is never lost.
        expect(versionOf(stored.get(parseId(id, "id", "Task"))!)).toBeGreaterThanOrEqual(version);
      }
      const { rows: messageRows } = await admin.query<{ id: string; conversation_id: string; seq: number }>(
        `SELECT m.id::text, m.conversation_id::text, m.seq FROM messages m JOIN conversations c ON c.id = m.conversation_id
          WHERE m.user_id = $1 AND m.seq <= c.last_seq ORDER BY m.conversation_id, m.seq`,
        [user.id],
      );
      const settled = new Set(messageRows.map((row) => row.id));
      for (const send of ackedSends) {
        expect(settled.has(parseId(send.userMessage.id, "id", "Message"))).toBe(true);
        expect(send.reply).not.toBeNull();
        expect(settled.has(parseId(send.reply!.id, "id", "Message"))).toBe(true);
      }

      // Every subscriber gets every committed event once the database is back: no gap, no duplicate.
      const expectedTasks = [...stored].map(([id, title]) => [id, versionOf(title)] as const).sort();
      const expectedMessages = [...settled].sort();
      const lastTaskVersions = (sub: QueuedSubscription) => {
        const last = new Map<string, number>();
        for (const result of sub.pending()) {
          if (result.errors) throw new Error(`taskChanged errored: ${JSON.stringify(result.errors)}`);
          const event = result.data?.taskChanged as TaskChangeView;
          last.set(parseId(event.taskId, "id", "Task"), versionOf(event.task!.title));
        }
        return [...last].sort();
      };
      const messageIds = (sub: QueuedSubscription) =>
        sub.pending().map((result) => {
          if (result.errors) throw new Error(`messageAdded errored: ${JSON.stringify(result.errors)}`);
          return parseId((result.data?.messageAdded as MessageView).id, "id", "Message");
        });
      // The subscribers catch up.
      await vi.waitFor(
        () => {
          for (const sub of taskSubs) expect(lastTaskVersions(sub), "the last version of each task a subscriber saw").toEqual(expectedTasks);
          for (const sub of messageSubs) expect(messageIds(sub).length, "messages a subscriber saw").toBeGreaterThanOrEqual(expectedMessages.length);
        },
        { timeout: 20_000, interval: 20 },
      );
      // A sentinel of each feed, so anything still on its way (a duplicate) arrives before it.
      const sentinel = await user.gql<{ addTask: { id: string } }>(ADD_TASK, { title: "v0", description: "sentinel" });
      const sentinelTurn = await user.gql<{ sendMessage: SendView }>(SEND, { input: { content: "sentinel" } });
      const sentinelMessages = [sentinelTurn.data!.sendMessage.userMessage.id, sentinelTurn.data!.sendMessage.reply!.id].map((id) =>
        parseId(id, "id", "Message"),
      );
      const sentinelTask = parseId(sentinel.data!.addTask.id, "id", "Task");
      // The sentinels arrive.
      await vi.waitFor(
        () => {
          for (const sub of taskSubs) {
            const seen = lastTaskVersions(sub).map(([id]) => id);
            expect(seen, "tasks a subscriber saw").toContain(sentinelTask);
          }
          for (const sub of messageSubs) expect(messageIds(sub), "messages a subscriber saw").toEqual(expect.arrayContaining(sentinelMessages));
        },
        { timeout: 20_000, interval: 20 },
      );

      let eventsChecked = 0;
      for (const sub of taskSubs) {
        const versions = new Map<string, number[]>();
        for (const result of sub.pending()) {
          expect(result.errors).toBeUndefined();
          const event = result.data?.taskChanged as TaskChangeView;
          const id = parseId(event.taskId, "id", "Task");
          versions.set(id, [...(versions.get(id) ?? []), versionOf(event.task!.title)]);
          eventsChecked += 1;
        }
        expect([...versions.keys()].sort()).toEqual([...expectedTasks.map(([id]) => id), sentinelTask].sort());
        for (const [id, seen] of versions) {
          // No version twice, none out of order, and the last is the committed one.
          expect(seen, `versions of task ${id}`).toEqual([...new Set(seen)].sort((a, b) => a - b));
          expect(seen.at(-1)).toBe(id === sentinelTask ? 0 : versionOf(stored.get(id)!));
        }
      }
      for (const sub of messageSubs) {
        const ids = messageIds(sub);
        eventsChecked += ids.length;
        expect(new Set(ids).size, "no message delivered twice").toBe(ids.length);
        expect([...ids].sort()).toEqual([...expectedMessages, ...sentinelMessages].sort());
      }

      const figures = {
        requests: all.reduce((sum, kind) => sum + kind.attempts, 0),
        faults: all.reduce((sum, kind) => sum + kind.unavailable, 0),
        writesVerified: created.size + ackedVersion.size + ackedSends.length * 2,
        cutTurns,
        retried: failedSends.length,
        eventsChecked,
      };
      if (process.env.FAULT_FIGURES) console.log(`database-restart ${JSON.stringify(figures)}`);
    } finally {
      await admin.end();
    }
  }, 90_000);
});
