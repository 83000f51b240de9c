/**
 * B8: fan-out beyond one machine, simulated on this one. `instances` API
 * processes (bench/api-server.ts) on one database and one transport
 * (postgres or nats), `sockets` graphql-ws sockets with one taskChanged
 * subscription each, in client processes (bench/scale-clients.ts), spread so
 * that each user's sockets sit on every instance (a user with several tabs or
 * devices, behind a balancer that does not pin users). Writers commit tasks
 * by raw SQL at `rate` a second for `seconds`, each for a random user; every
 * socket of that user must receive it once.
 *
 * Reports commit→receipt p50/p99 (from sending the autocommitted INSERT to
 * the socket's message, both on this machine's clock), events lost and
 * duplicated, the write rate reached and the API processes' CPU per write.
 */
import { fork, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath } from "node:url";
import pg from "pg";
import { signHs256 } from "../src/auth/verifier.js";
import { ApiProcess } from "./api-process.js";
import { cpuTimeMs } from "./lib/cpu.js";
import { percentileOfSorted as percentile } from "./lib/figure.js";
import { pollUntil } from "./lib/poll.js";
import type { FromClients, ToClients } from "./scale-clients.js";

export interface ScaleOptions {
  url: string;
  secret: string;
  /** REALTIME_TRANSPORT and its settings, as environment variables for the API processes. */
  transportEnv: Record<string, string>;
  instances: number;
  sockets: number;
  users: number;
  rate: number;
  seconds: number;
  log(message: string): void;
}

export interface ScaleResult {
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
  expected: number;
  lost: number;
  duplicates: number;
  writes: number;
  /** Writes committed per second over the measured window. */
  achievedRate: number;
  /** The INSERT's own round trip (sent → committed), p50 and p99: the part of commit→receipt spent committing. */
  commitP50Ms: number;
  commitP99Ms: number;
  /** CPU time of all API processes over the window, per committed write. */
  apiCpuMsPerWrite: number | null;
  connectMs: number;
}

/** Sockets per client process: well under the file-descriptor limit. */
const SOCKETS_PER_CLIENT = 8000;
/** Writers' connections. */
const WRITERS = 16;
/** A writer that falls this far behind skips writes rather than queue without bound. */
const MAX_IN_FLIGHT = 256;

interface Clients {
  children: ChildProcess[];
  ask(message: ToClients, reply: FromClients["type"]): Promise<FromClients[]>;
}

export async function runScale(options: ScaleOptions): Promise<ScaleResult> {
  const servers: ApiProcess[] = [];
  let clients: Clients | undefined;
  const users = Array.from({ length: options.users }, (_, i) => `bench-scale-${i}-${process.pid}-${Date.now()}`);
  const sql = new pg.Pool({ connectionString: options.url, max: WRITERS });
  try {
    for (let i = 0; i < options.instances; i += 1) servers.push(await startInstance(options));
    const connectStart = performance.now();
    clients = await openClients(options, servers, users);
    const connectMs = performance.now() - connectStart;
    options.log(`  ${options.sockets} sockets on ${options.instances} instances in ${(connectMs / 1000).toFixed(1)} s`);
    await writeFor(sql, users, Math.min(options.rate, 200), 2, "warm-up");
    await sleep(1000);
    await clients.ask({ type: "collect" }, "receipts");
    const cpuBefore = totalCpu(servers);
    const written = await writeFor(sql, users, options.rate, options.seconds, "b8");
    const cpuAfter = totalCpu(servers);
    return await measure(options, clients, written, {
      connectMs,
      cpuMs: cpuBefore === undefined || cpuAfter === undefined ? undefined : cpuAfter - cpuBefore,
    });
  } finally {
    await Promise.all((clients?.children ?? []).map((child) => closeClient(child)));
    await Promise.all(servers.map((server) => server.stop()));
    await sql.query("DELETE FROM tasks WHERE user_id = ANY($1)", [users]).catch(() => {});
    await sql.end();
  }
}

async function closeClient(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = once(child, "exit");
  child.send({ type: "close" } satisfies ToClients);
  await Promise.race([exited, sleep(10_000).then(() => child.kill("SIGKILL"))]);
}

function startInstance(options: ScaleOptions): Promise<ApiProcess> {
  return ApiProcess.start({
    env: {
      DATABASE_URL: options.url,
      AUTH_JWT_SECRET: options.secret,
      LOG_LEVEL: process.env.BENCH_LOG_LEVEL ?? "silent",
      SUBSCRIPTIONS_PER_USER: "10000",
      WS_CONNECTIONS_PER_USER: "10000",
      // The busiest instance's share: the placement is by blocks of `users`, so it is uneven when
      // sockets / users is not a multiple of the instances (20,000 / 2,000 on 4 gives 6,000, 6,000, 4,000, 4,000).
      WS_MAX_CONNECTIONS: String(busiestInstance(options) + 100),
      // Every simulated client comes from 127.0.0.1, where real ones come from many addresses.
      WS_UNAUTHENTICATED_PER_ADDRESS: String(busiestInstance(options) + 100),
      ...options.transportEnv,
    },
  });
}

function totalCpu(servers: readonly ApiProcess[]): number | undefined {
  let total = 0;
  for (const server of servers) {
    const cpu = cpuTimeMs(server.pid);
    if (cpu === undefined) return undefined;
    total += cpu;
  }
  return total;
}

/** Socket k belongs to user k % users and sits on instance ⌊k / users⌋ % instances: each user on every instance. */
function placement(options: ScaleOptions): { user: number; instance: number }[] {
  return Array.from({ length: options.sockets }, (_, k) => ({
    user: k % options.users,
    instance: Math.floor(k / options.users) % options.instances,
  }));
}

function busiestInstance(options: ScaleOptions): number {
  const counts = new Array<number>(options.instances).fill(0);
  for (const { instance } of placement(options)) counts[instance] = (counts[instance] ?? 0) + 1;
  return Math.max(...counts);
}

async function openClients(options: ScaleOptions, servers: readonly ApiProcess[], users: readonly string[]): Promise<Clients> {
  const tokens = await Promise.all(users.map((sub) => signHs256(options.secret, { sub, expiresIn: "2h" })));
  const count = Math.ceil(options.sockets / SOCKETS_PER_CLIENT);
  const children = Array.from({ length: count }, () =>
    fork(fileURLToPath(new URL("./scale-clients.ts", import.meta.url)), {
      execArgv: ["--import", "tsx"],
      stdio: ["ignore", "inherit", "inherit", "ipc"],
    }),
  );
  const ask = async (message: ToClients, reply: FromClients["type"]) =>
    Promise.all(
      children.map(async (child) => {
        const answer = once(child, "message") as Promise<[FromClients]>;
        child.send(message);
        const [got] = await answer;
        if (got.type === "failed") throw new Error(`a client process failed: ${got.message}`);
        if (got.type !== reply) throw new Error(`a client process answered ${got.type}, not ${reply}`);
        return got;
      }),
    );
  const ports = servers.map((server) => server.port);
  const targets = placement(options).map(({ user, instance }) => [instance, user] as [number, number]);
  await Promise.all(
    children.map(async (child, index) => {
      const answer = once(child, "message") as Promise<[FromClients]>;
      child.send({ type: "open", ports, tokens, targets: targets.filter((_, k) => k % count === index) } satisfies ToClients);
      const [got] = await answer;
      if (got.type !== "opened") throw new Error(`a client process could not open its sockets: ${JSON.stringify(got).slice(0, 300)}`);
    }),
  );
  const established = async () => (await Promise.all(servers.map((server) => server.stats()))).reduce((sum, stats) => sum + stats.established, 0);
  await pollUntil(async () => (await established()) >= options.sockets, 180_000, `${options.sockets} subscriptions`, 200);
  return { children, ask };
}

interface Written {
  /** Per write number: when its INSERT was sent (machine clock, ms), and for which user. */
  sentAt: Float64Array;
  userOf: Int32Array;
  committed: number;
  /** Each committed INSERT's round trip, ms. */
  commitMs: number[];
  skipped: number;
  failed: number;
  seconds: number;
}

/** Commits `rate` tasks a second for `seconds`, each for a random user, paced every 10 ms. */
async function writeFor(sql: pg.Pool, users: readonly string[], rate: number, seconds: number, label: string): Promise<Written> {
  const total = Math.round(rate * seconds);
  const written: Written = {
    sentAt: new Float64Array(total).fill(Number.NaN),
    userOf: new Int32Array(total).fill(-1),
    committed: 0,
    commitMs: [],
    skipped: 0,
    failed: 0,
    seconds,
  };
  const pending = new Set<Promise<void>>();
  const start = performance.now();
  let issued = 0;
  while (issued < total) {
    const due = Math.min(total, Math.floor(((performance.now() - start) / 1000) * rate));
    for (; issued < due; issued += 1) {
      if (pending.size >= MAX_IN_FLIGHT) {
        written.skipped += 1;
        continue;
      }
      const user = Math.floor(Math.random() * users.length);
      const n = issued;
      written.userOf[n] = user;
      written.sentAt[n] = performance.timeOrigin + performance.now();
      const title = label === "b8" ? `b8 ${n}` : label;
      const insert = sql.query("INSERT INTO tasks (user_id, title) VALUES ($1, $2)", [users[user], title]).then(
        () => {
          written.committed += 1;
          written.commitMs.push(performance.timeOrigin + performance.now() - written.sentAt[n]!);
        },
        () => {
          // Not committed: nobody is owed it.
          written.userOf[n] = -1;
          written.failed += 1;
        },
      );
      pending.add(insert);
      void insert.finally(() => pending.delete(insert));
    }
    await sleep(10);
  }
  await Promise.all(pending);
  written.seconds = (performance.now() - start) / 1000;
  return written;
}

async function measure(
  options: ScaleOptions,
  clients: Clients,
  written: Written,
  extra: { connectMs: number; cpuMs: number | undefined },
): Promise<ScaleResult> {
  const perUser = new Int32Array(options.users);
  for (const { user } of placement(options)) perUser[user] = (perUser[user] ?? 0) + 1;
  let expected = 0;
  for (let n = 0; n < written.userOf.length; n += 1) {
    const user = written.userOf[n]!;
    if (user >= 0) expected += perUser[user]!;
  }
  // Late events get up to 15 s; receipts are collected until all arrived or that passes.
  const latencies: number[] = [];
  let received = 0;
  let duplicates = 0;
  const deadline = performance.now() + 15_000;
  do {
    await sleep(received === 0 ? 500 : 1000);
    for (const reply of await clients.ask({ type: "collect" }, "receipts")) {
      if (reply.type !== "receipts") continue;
      duplicates += reply.duplicates;
      received += reply.writes.length;
      reply.writes.forEach((n, i) => latencies.push(reply.at[i]! - written.sentAt[n]!));
    }
  } while (received < expected && performance.now() < deadline);
  const sorted = Float64Array.from(latencies).sort();
  const commits = Float64Array.from(written.commitMs).sort();
  return {
    commitP50Ms: percentile(commits, 50),
    commitP99Ms: percentile(commits, 99),
    p50Ms: percentile(sorted, 50),
    p99Ms: percentile(sorted, 99),
    maxMs: sorted.at(-1) ?? Number.NaN,
    expected,
    lost: expected - received,
    duplicates,
    writes: written.committed,
    achievedRate: written.committed / written.seconds,
    apiCpuMsPerWrite: extra.cpuMs === undefined || written.committed === 0 ? null : extra.cpuMs / written.committed,
    connectMs: extra.connectMs,
  };
}
