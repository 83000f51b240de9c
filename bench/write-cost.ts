/**
 * B9: what a wake-up costs the writer. Tasks are written by 16 concurrent
 * writers with the realtime trigger in each of three modes, one API process
 * running on the matching transport all along (it LISTENs, or its relay
 * drains the outbox into NATS while the writers write):
 *
 *   off       the trigger disabled (ALTER TABLE tasks DISABLE TRIGGER tasks_notify)
 *   postgres  pg_notify at commit: NOTIFY's commit-time lock serialises the committers
 *   nats      an outbox row in the same transaction, published and deleted by the relay
 *
 * Two writers: 16 `pg` connections each INSERTing in a loop (the database's
 * side alone), and autocannon with 16 connections on the API's addTask
 * mutation (what a deployment sees, the API's own CPU included). Modes run in
 * turn, `rounds` times over, so a neighbour's load falls on all of them; the
 * figure is each mode's median.
 */
import { setTimeout as sleep } from "node:timers/promises";
import pg from "pg";
import { signHs256 } from "../src/auth/verifier.js";
import { ApiProcess } from "./api-process.js";
import { median } from "./lib/figure.js";
import { ADD, load } from "./scenarios/http-load.js";

export type WriteMode = "off" | "postgres" | "nats";

export interface WriteCostOptions {
  url: string;
  /** The NATS server for the nats mode. */
  natsUrl: string;
  seconds: number;
  rounds: number;
  writers: number;
  log(message: string): void;
}

export interface ModeResult {
  /** Committed INSERTs a second, 16 SQL writers. */
  sqlRate: number;
  /** addTask answers a second over HTTP, 16 connections. */
  httpRate: number;
  /** Outbox rows left when the writers stopped (nats): whether the relay kept up. */
  backlog: number;
}

export const MODES: readonly WriteMode[] = ["off", "postgres", "nats"];
const WARMUP_S = 2;

export async function runWriteCost(options: WriteCostOptions): Promise<Record<WriteMode, ModeResult>> {
  const samples = new Map<WriteMode, ModeResult[]>(MODES.map((mode) => [mode, []]));
  const admin = new pg.Client({ connectionString: options.url });
  await admin.connect();
  try {
    for (let round = 0; round < options.rounds; round += 1) {
      for (const mode of MODES) {
        const result = await runMode(options, admin, mode);
        options.log(
          `  B9 round ${round + 1} ${mode}: SQL ${result.sqlRate.toFixed(0)}/s, addTask ${result.httpRate.toFixed(0)}/s, outbox left ${result.backlog}`,
        );
        samples.get(mode)!.push(result);
      }
    }
  } finally {
    await admin.query(`ALTER TABLE "tasks" ENABLE TRIGGER "tasks_notify"`).catch(() => {});
    await admin.query(`DELETE FROM "tasks" WHERE "user_id" LIKE 'bench-write-%'`).catch(() => {});
    await admin.end();
  }
  const summary = (mode: WriteMode): ModeResult => {
    const results = samples.get(mode)!;
    return {
      sqlRate: median(results.map((r) => r.sqlRate)),
      httpRate: median(results.map((r) => r.httpRate)),
      backlog: Math.max(...results.map((r) => r.backlog)),
    };
  };
  return { off: summary("off"), postgres: summary("postgres"), nats: summary("nats") };
}

async function runMode(options: WriteCostOptions, admin: pg.Client, mode: WriteMode): Promise<ModeResult> {
  const secret = crypto.randomUUID() + crypto.randomUUID();
  const transportEnv: Record<string, string> =
    mode === "nats" ? { REALTIME_TRANSPORT: "nats", NATS_URL: options.natsUrl, NATS_SUBJECT_PREFIX: "bench.b9" } : { REALTIME_TRANSPORT: "postgres" };
  // The instance claims its transport for the triggers as it connects.
  const api = await ApiProcess.start({
    env: { DATABASE_URL: options.url, AUTH_JWT_SECRET: secret, LOG_LEVEL: process.env.BENCH_LOG_LEVEL ?? "silent", ...transportEnv },
  });
  await admin.query(`ALTER TABLE "tasks" ${mode === "off" ? "DISABLE" : "ENABLE"} TRIGGER "tasks_notify"`);
  try {
    await sqlWriters(options, WARMUP_S, mode);
    const sqlRate = await sqlWriters(options, options.seconds, mode);
    const backlog = await outboxSize(admin);
    const user = `bench-write-http-${mode}-${crypto.randomUUID()}`;
    const token = await signHs256(secret, { sub: user, expiresIn: "1h" });
    const url = `http://127.0.0.1:${api.port}/graphql`;
    const body = JSON.stringify({ query: ADD, variables: { title: "b9" } });
    await load(url, body, { authorization: `Bearer ${token}` }, WARMUP_S, undefined, options.writers);
    const http = await load(url, body, { authorization: `Bearer ${token}` }, options.seconds, api.pid, options.writers);
    // Let the relay empty the outbox before the next mode starts.
    for (let i = 0; i < 100 && (await outboxSize(admin)) > 0; i += 1) await sleep(100);
    return { sqlRate, httpRate: http.rps, backlog };
  } finally {
    await api.stop();
  }
}

/** `writers` connections INSERTing tasks one after another for `seconds`; returns commits a second. */
async function sqlWriters(options: WriteCostOptions, seconds: number, mode: WriteMode): Promise<number> {
  const clients = await Promise.all(
    Array.from({ length: options.writers }, async () => {
      const client = new pg.Client({ connectionString: options.url });
      await client.connect();
      return client;
    }),
  );
  let committed = 0;
  const start = performance.now();
  const deadline = start + seconds * 1000;
  try {
    await Promise.all(
      clients.map(async (client, index) => {
        const user = `bench-write-sql-${mode}-${index}-${process.pid}`;
        while (performance.now() < deadline) {
          await client.query(`INSERT INTO "tasks" ("user_id", "title") VALUES ($1, 'b9')`, [user]);
          committed += 1;
        }
      }),
    );
    return committed / ((performance.now() - start) / 1000);
  } finally {
    await Promise.all(clients.map((client) => client.end()));
  }
}

async function outboxSize(admin: pg.Client): Promise<number> {
  const { rows } = await admin.query<{ n: number }>(`SELECT count(*)::int AS n FROM "realtime_outbox"`);
  return rows[0]?.n ?? 0;
}
