/**
 * B2's provenance figures: what the task_events triggers cost an addTask.
 * Both states run in the same run on the same processes, in rounds whose
 * order alternates, the triggers switched with ALTER TABLE … DISABLE TRIGGER:
 *  - throughput of addTask through the API, and of the raw server's INSERT;
 *  - the Postgres backend's CPU time per INSERT (from /proc, for a local
 *    database): the trigger's own work, which a busy neighbour does not
 *    inflate the way it does throughput. Its share of all the CPU an addTask
 *    costs (the API's and Postgres') is what the trigger takes from addTask's
 *    throughput when the machine is CPU-bound, as B2 is here.
 */
import { randomUUID } from "node:crypto";
import pg from "pg";
import { cpuTimeMs } from "../lib/cpu.js";
import { figure, median, type Figure } from "../lib/figure.js";
import { DURATION_S, load, WARMUP_S, type Load } from "../lib/load.js";
import type { BenchContext } from "../lib/scenario.js";

const EVENT_TRIGGERS = ["tasks_events", "tasks_events_update"];
const TRIGGER_ROUNDS = Number(process.env.BENCH_TRIGGER_ROUNDS ?? 4);
/** The trigger may cost at most this share of addTask's throughput. */
const MAX_COST = 0.15;
const INSERTS_PER_ROUND = Number(process.env.BENCH_TRIGGER_INSERTS ?? 3000);

async function setEventTriggers(sql: pg.Client, on: boolean): Promise<void> {
  for (const name of EVENT_TRIGGERS) await sql.query(`ALTER TABLE tasks ${on ? "ENABLE" : "DISABLE"} TRIGGER ${name}`);
}

interface Side {
  url: string;
  headers: Record<string, string>;
  pid?: number | undefined;
}

/** One side's loads with the triggers on and off, alternating which goes first each round. */
async function onOff(sql: pg.Client, sides: Side[], body: string): Promise<{ on: Load[][]; off: Load[][] }> {
  const on: Load[][] = sides.map(() => []);
  const off: Load[][] = sides.map(() => []);
  try {
    for (let round = 0; round < TRIGGER_ROUNDS; round += 1) {
      for (const enabled of round % 2 === 0 ? [true, false] : [false, true]) {
        await setEventTriggers(sql, enabled);
        for (const [index, side] of sides.entries()) {
          await load(side.url, body, side.headers, WARMUP_S);
          (enabled ? on : off)[index]!.push(await load(side.url, body, side.headers, DURATION_S, side.pid));
        }
      }
    }
  } finally {
    await setEventTriggers(sql, true);
  }
  return { on, off };
}

/**
 * addTask through the API, and the bare INSERT of the raw server, with the
 * task_events triggers on and off, TRIGGER_ROUNDS rounds in alternating
 * order, on the same processes: the median of the per-round throughput
 * ratios, so a neighbour's load moves both halves of a round alike.
 */
export async function triggerCost(ctx: BenchContext, sql: pg.Client, sides: { api: Side; raw: Side }, body: string): Promise<Figure[]> {
  ctx.log(`B2: addTask and the raw INSERT with the task_events triggers on and off, ${TRIGGER_ROUNDS} rounds of ${DURATION_S} s each…`);
  const { on, off } = await onOff(sql, [sides.api, sides.raw], body);
  const backend = await backendCpu(ctx, sql);
  const figures = [...triggerRows(ctx, "addTask", on[0]!, off[0]!), ...triggerRows(ctx, "raw INSERT (bare pg server)", on[1]!, off[1]!)];
  if (backend) figures.push(...cpuRows(backend, on[0]!));
  return figures;
}

function triggerRows(ctx: BenchContext, what: string, on: Load[], off: Load[]): Figure[] {
  const ratios = on.map((load, i) => load.rps / off[i]!.rps);
  const ratio = median(ratios);
  const shown = (loads: Load[]) => loads.map((l) => l.rps.toFixed(0)).join("/");
  ctx.log(`  ${what}: on ${shown(on)} req/s, off ${shown(off)} req/s; per-round on/off ${ratios.map((r) => r.toFixed(2)).join(" ")}`);
  const medianOf = (loads: Load[], pick: (l: Load) => number | null) => median(loads.map(pick).filter((v): v is number => v !== null));
  return [
    figure({
      id: "B2",
      figure: `${what}: throughput, task_events trigger on / off`,
      ours: median(on.map((l) => l.rps)),
      baseline: median(off.map((l) => l.rps)),
      unit: "req/s",
      goal: "—",
      note: `the same process, ${TRIGGER_ROUNDS} alternating rounds of ${DURATION_S} s (after a ${WARMUP_S} s warm-up each); per-round ratios ${ratios.map((r) => r.toFixed(2)).join(", ")}, median ${ratio.toFixed(2)}; "off" is ALTER TABLE tasks DISABLE TRIGGER ${EVENT_TRIGGERS.join(", ")}`,
    }),
    figure({
      id: "B2",
      figure: `${what}: server CPU per request, task_events trigger on / off`,
      ours: medianOf(on, (l) => l.cpuMsPerRequest),
      baseline: medianOf(off, (l) => l.cpuMsPerRequest),
      unit: "ms",
      goal: "—",
    }),
  ];
}

interface BackendCpu {
  /** Postgres backend CPU ms per INSERT, triggers on / off (medians of the rounds). */
  on: number;
  off: number;
  rounds: { on: number; off: number }[];
}

/** CPU ms the session's backend used for `count` INSERTs, one transaction each (as addTask's are); undefined without /proc. */
async function insertCpu(client: pg.Client, pid: number, userId: string, count: number): Promise<number | undefined> {
  const before = cpuTimeMs(pid);
  for (let i = 0; i < count; i += 1) {
    await client.query("INSERT INTO tasks (user_id, title) VALUES ($1, $2) RETURNING id, title, completed, created_at", [userId, "bench"]);
  }
  const after = cpuTimeMs(pid);
  return before === undefined || after === undefined ? undefined : (after - before) / count;
}

/** The backend's CPU per INSERT with the triggers on and off, TRIGGER_ROUNDS alternating rounds; undefined for a remote database. */
async function backendCpu(ctx: BenchContext, sql: pg.Client): Promise<BackendCpu | undefined> {
  const client = new pg.Client({ connectionString: ctx.url });
  await client.connect();
  const userId = `bench-trigger-${randomUUID()}`;
  try {
    const [{ pid }] = (await client.query<{ pid: number }>("SELECT pg_backend_pid() AS pid")).rows as [{ pid: number }];
    if (cpuTimeMs(pid) === undefined) return undefined;
    await insertCpu(client, pid, userId, 200); // warm-up
    const rounds: { on: number; off: number }[] = [];
    for (let round = 0; round < TRIGGER_ROUNDS; round += 1) {
      const measured: { on?: number; off?: number } = {};
      for (const enabled of round % 2 === 0 ? [true, false] : [false, true]) {
        await setEventTriggers(sql, enabled);
        measured[enabled ? "on" : "off"] = await insertCpu(client, pid, userId, INSERTS_PER_ROUND);
      }
      rounds.push({ on: measured.on ?? Number.NaN, off: measured.off ?? Number.NaN });
    }
    ctx.log(`  Postgres CPU per INSERT, on/off: ${rounds.map((r) => `${r.on.toFixed(3)}/${r.off.toFixed(3)}`).join(", ")} ms`);
    return { on: median(rounds.map((r) => r.on)), off: median(rounds.map((r) => r.off)), rounds };
  } finally {
    await setEventTriggers(sql, true);
    await client.query("DELETE FROM tasks WHERE user_id = $1", [userId]);
    await client.query("DELETE FROM task_events WHERE user_id = $1", [userId]);
    await client.end();
  }
}

function cpuRows(backend: BackendCpu, apiOn: Load[]): Figure[] {
  const api = median(apiOn.map((l) => l.cpuMsPerRequest).filter((v): v is number => v !== null));
  const share = (backend.on - backend.off) / (api + backend.on);
  return [
    figure({
      id: "B2",
      figure: "Postgres CPU per INSERT, task_events trigger on / off",
      ours: backend.on,
      baseline: backend.off,
      unit: "ms",
      goal: "—",
      note: `the backend of one session, ${INSERTS_PER_ROUND} single-row INSERTs (one transaction each) per round, ${TRIGGER_ROUNDS} alternating rounds; CPU time from /proc`,
    }),
    figure({
      id: "B2",
      figure: "addTask: the trigger's share of a request's CPU (its throughput cost when CPU-bound)",
      ours: share * 100,
      baseline: null,
      unit: "%",
      goal: `≤ ${MAX_COST * 100}%`,
      met: share <= MAX_COST,
      note: `(Postgres CPU per INSERT on − off) / (API CPU per addTask + Postgres CPU per INSERT on) = (${backend.on.toFixed(3)} − ${backend.off.toFixed(3)}) / (${api.toFixed(3)} + ${backend.on.toFixed(3)}); leaves out the load generator's CPU, so it overstates the share`,
    }),
  ];
}
