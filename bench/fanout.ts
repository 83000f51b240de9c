/**
 * Fan-out: N graphql-ws sockets, each with one taskChanged subscription,
 * spread over 10 users, on one API process (bench/api-server.ts, a child
 * process so its memory is its own). Tasks are committed by raw SQL, one at
 * a time, round the users; each commit reaches N/10 sockets. One commit per
 * user warms up first and is not measured.
 *
 * Reports commit→receipt p50/p99 (from sending the autocommitted INSERT to
 * each socket's message), events lost, the server's RSS per idle subscribed
 * socket, and how long connecting and subscribing all N took. The clients are
 * bare `ws` sockets speaking graphql-transport-ws, in this process.
 *
 * The baseline rides on the same commits: a raw `pg` client in this process
 * LISTENs on the ten users' channels, and its commit→notification latency is
 * measured beside the sockets'.
 */
import { setTimeout as sleep } from "node:timers/promises";
import pg from "pg";
import type { WebSocket } from "ws";
import { signHs256 } from "../src/auth/verifier.js";
import { ApiProcess } from "./api-process.js";
import { percentileOfSorted as percentile } from "./lib/figure.js";
import { pollUntil } from "./lib/poll.js";
import { openSubscriber } from "./ws-subscriber.js";

export const FANOUT_GOALS = {
  /** p99 commit→receipt, by N. */
  p99Ms: (n: number) => (n <= 5000 ? 50 : 200),
  rssPerSocketBytes: 50 * 1024,
};

export interface FanoutResult {
  sockets: number;
  connectMs: number;
  rssPerSocketBytes: number;
  heapPerSocketBytes: number;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
  commits: number;
  expected: number;
  lost: number;
  duplicates: number;
  /** The raw LISTEN client's commit→notification latencies and misses, on the same commits. */
  rawP50Ms: number;
  rawP99Ms: number;
  rawLost: number;
}

const USERS = 10;
const QUERY = "subscription { taskChanged { kind taskId task { id title } } }";

interface Client {
  socket: WebSocket;
  user: number;
}

/** Subscribes one socket; `onEvent` gets the commit number of each fan-out event (-1 for a warm-up). */
async function openClient(port: number, token: string, user: number, onEvent: (commit: number) => void): Promise<Client> {
  const { socket } = await openSubscriber({
    port,
    token,
    query: QUERY,
    onMessage: (text) => {
      const match = /"title":"fanout (\d+)"/.exec(text);
      if (match) onEvent(Number(match[1]));
      else if (text.includes('"title":"warm-up"')) onEvent(-1);
    },
  });
  return { socket, user };
}

export async function runFanout(options: { url: string; secret: string; sockets: number; commits?: number }): Promise<FanoutResult> {
  const { url, secret, sockets } = options;
  const commits = options.commits ?? 100;
  const server = await ApiProcess.start({
    env: {
      DATABASE_URL: url,
      AUTH_JWT_SECRET: secret,
      LOG_LEVEL: process.env.BENCH_LOG_LEVEL ?? "silent",
      // Every socket of a user subscribes; the default of 50 per user would refuse most of them.
      SUBSCRIPTIONS_PER_USER: "10000",
      // Thousands of sockets over ten users, and up to 15,000 in all (the bench raises `ulimit -n` for them).
      WS_CONNECTIONS_PER_USER: "10000",
      WS_MAX_CONNECTIONS: String(sockets + 100),
    },
  });
  const sql = new pg.Client({ connectionString: url });
  await sql.connect();
  const users = Array.from({ length: USERS }, (_, i) => `bench-fanout-${i}-${process.pid}-${Date.now()}`);
  const rawListener = new pg.Client({ connectionString: url });
  await rawListener.connect();
  /** When the raw LISTEN client got each task's notification, by task id. */
  const notifiedAt = new Map<string, number>();
  rawListener.on("notification", (message) => {
    const { i: id } = JSON.parse(message.payload ?? "{}") as { i?: string };
    if (id !== undefined && !notifiedAt.has(id)) notifiedAt.set(id, performance.now());
  });
  for (const user of users) {
    const { rows } = await sql.query<{ channel: string }>("SELECT todo_realtime_channel($1) AS channel", [user]);
    await rawListener.query(`LISTEN "${rows[0]!.channel}"`);
  }
  const taskIds: string[] = [];
  const tokens = await Promise.all(users.map((sub) => signHs256(secret, { sub, expiresIn: "1h" })));

  // Commit i goes to users[i % USERS] and is sent at sentAt[i]; each socket keeps the commits it got.
  const sentAt = new Float64Array(commits).fill(Number.NaN);
  const latencies: number[] = [];
  const receivedBy = new Map<number, number>();
  let duplicates = 0;
  let warmups = 0;
  const clients: Client[] = [];

  try {
    // Warm the server's code paths with one subscriber, then take the baseline.
    const warm = await openClient(server.port, tokens[0]!, 0, () => {});
    await pollUntil(async () => (await server.stats()).established >= 1, 10_000, "the warm-up subscription", 2);
    warm.socket.close();
    await pollUntil(async () => (await server.stats()).subscribers === 0, 10_000, "the warm-up subscription to end", 2);
    await sleep(200);
    const baseline = await server.stats(true);

    const connectStart = performance.now();
    const BATCH = 250;
    for (let start = 0; start < sockets; start += BATCH) {
      const batch = [];
      for (let index = start; index < Math.min(sockets, start + BATCH); index += 1) {
        const user = index % USERS;
        const mine = new Set<number>();
        batch.push(
          openClient(server.port, tokens[user]!, user, (commit) => {
            if (commit === -1) {
              warmups += 1;
              return;
            }
            if (mine.has(commit)) {
              duplicates += 1;
              return;
            }
            mine.add(commit);
            latencies.push(performance.now() - sentAt[commit]!);
            receivedBy.set(commit, (receivedBy.get(commit) ?? 0) + 1);
          }),
        );
      }
      clients.push(...(await Promise.all(batch)));
    }
    await pollUntil(async () => (await server.stats()).established >= baseline.established + sockets, 120_000, `${sockets} subscriptions`, 20);
    const connectMs = performance.now() - connectStart;

    await sleep(1000);
    const idle = await server.stats(true);

    // Warm-up, not measured: one commit per user, so the first measured ones do not pay for JIT and first queries.
    for (const [index, user] of users.entries()) {
      const before = warmups;
      await sql.query("INSERT INTO tasks (user_id, title) VALUES ($1, 'warm-up')", [user]);
      await pollUntil(
        () => warmups >= before + Math.floor(sockets / USERS) + (index < sockets % USERS ? 1 : 0),
        10_000,
        "the warm-up commits",
        2,
      ).catch(() => {});
    }

    // Socket i belongs to user i % USERS.
    const expectedFor = (commit: number) => Math.floor(sockets / USERS) + (commit % USERS < sockets % USERS ? 1 : 0);
    for (let commit = 0; commit < commits; commit += 1) {
      const user = users[commit % USERS]!;
      const expected = expectedFor(commit);
      sentAt[commit] = performance.now();
      const { rows } = await sql.query<{ id: string }>("INSERT INTO tasks (user_id, title) VALUES ($1, $2) RETURNING id", [user, `fanout ${commit}`]);
      taskIds.push(rows[0]!.id);
      // One commit at a time: its fan-out is measured on its own.
      await pollUntil(() => (receivedBy.get(commit) ?? 0) >= expected, 10_000, `commit ${commit}'s receipts`, 2).catch(() => {});
      await sleep(10);
    }
    // Anything late has a last chance to arrive.
    await sleep(500);

    let expectedTotal = 0;
    for (let commit = 0; commit < commits; commit += 1) expectedTotal += expectedFor(commit);
    const received = [...receivedBy.values()].reduce((a, b) => a + b, 0);
    const sorted = Float64Array.from(latencies).sort();
    const rawLatencies = taskIds.flatMap((id, commit) => (notifiedAt.has(id) ? [notifiedAt.get(id)! - sentAt[commit]!] : []));
    const rawSorted = Float64Array.from(rawLatencies).sort();
    return {
      sockets,
      connectMs,
      rssPerSocketBytes: (idle.rss - baseline.rss) / sockets,
      heapPerSocketBytes: (idle.heapUsed - baseline.heapUsed) / sockets,
      p50Ms: percentile(sorted, 50),
      p99Ms: percentile(sorted, 99),
      maxMs: sorted.at(-1) ?? Number.NaN,
      commits,
      expected: expectedTotal,
      lost: expectedTotal - received,
      duplicates,
      rawP50Ms: percentile(rawSorted, 50),
      rawP99Ms: percentile(rawSorted, 99),
      rawLost: commits - rawLatencies.length,
    };
  } finally {
    for (const { socket } of clients) socket.terminate();
    await sql.query("DELETE FROM tasks WHERE user_id = ANY($1)", [users]).catch(() => {});
    await sql.end();
    await rawListener.end();
    await server.stop();
  }
}
