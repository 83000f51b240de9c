/**
 * B2's provenance figures: what the task_events triggers cost an addTask.
 * Both states run in the same run on the same processes, in rounds whose
 * order alternates, the triggers switched with ALTER TABLE … DISABLE TRIGGER:
 *  - throughput of addTask through the API, and of the raw server's INSERT;
 *  - the trigger's own time per row (EXPLAIN ANALYZE), which a busy
 *    neighbour disturbs far less than throughput, and its share of all the
 *    CPU an addTask costs (the API's per request, from /proc, and the
 *    Postgres backend's per single-row INSERT): what the trigger takes from
 *    addTask's throughput when the machine is CPU-bound, as B2 is here.
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
const INSERTS = Number(process.env.BENCH_TRIGGER_INSERTS ?? 3000);
const BULK_ROWS = 2000;
const EXPLAIN_RUNS = 7;

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
  const side = await databaseSide(ctx);
  return [
    ...triggerRows(ctx, "addTask", on[0]!, off[0]!),
    ...triggerRows(ctx, "raw INSERT (bare pg server)", on[1]!, off[1]!),
    ...shareRows(side, on[0]!),
  ];
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

/** How long the task_events trigger runs per row, from EXPLAIN ANALYZE of a bulk INSERT rolled back (ms per call). */
async function triggerMsPerRow(client: pg.Client, userId: string): Promise<number[]> {
  const perRow: number[] = [];
  for (let run = 0; run < EXPLAIN_RUNS; run += 1) {
    await client.query("BEGIN");
    try {
      const { rows } = await client.query<{ "QUERY PLAN": { Triggers?: { "Trigger Name": string; Time: number; Calls: number }[] }[] }>(
        "EXPLAIN (ANALYZE, FORMAT JSON) INSERT INTO tasks (user_id, title) SELECT $1, 'bench ' || g FROM generate_series(1, $2::int) g",
        [userId, BULK_ROWS],
      );
      const trigger = rows[0]?.["QUERY PLAN"][0]?.Triggers?.find((t) => t["Trigger Name"] === "tasks_events");
      if (trigger) perRow.push(trigger.Time / trigger.Calls);
    } finally {
      await client.query("ROLLBACK");
    }
  }
  return perRow;
}

/** CPU ms the session's backend uses per single-row INSERT, one transaction each as addTask's; undefined without /proc. */
async function insertCpu(client: pg.Client, userId: string, count: number): Promise<number | undefined> {
  const [{ pid }] = (await client.query<{ pid: number }>("SELECT pg_backend_pid() AS pid")).rows as [{ pid: number }];
  const before = cpuTimeMs(pid);
  for (let i = 0; i < count; i += 1) {
    await client.query("INSERT INTO tasks (user_id, title) VALUES ($1, $2) RETURNING id, title, completed, created_at", [userId, "bench"]);
  }
  const after = cpuTimeMs(pid);
  return before === undefined || after === undefined ? undefined : (after - before) / count;
}

interface DatabaseSide {
  /** The trigger's time per row, each EXPLAIN run. */
  triggerMs: number[];
  /** Postgres backend CPU per single-row INSERT with the trigger on; undefined for a remote database. */
  insertCpuMs: number | undefined;
}

async function databaseSide(ctx: BenchContext): Promise<DatabaseSide> {
  const client = new pg.Client({ connectionString: ctx.url });
  await client.connect();
  const userId = `bench-trigger-${randomUUID()}`;
  try {
    await insertCpu(client, userId, 200); // warm-up
    const triggerMs = await triggerMsPerRow(client, userId);
    const insertCpuMs = await insertCpu(client, userId, INSERTS);
    ctx.log(
      `  task_events trigger per row (EXPLAIN ANALYZE): ${triggerMs.map((ms) => ms.toFixed(4)).join(", ")} ms; Postgres CPU per INSERT ${insertCpuMs?.toFixed(3) ?? "?"} ms`,
    );
    return { triggerMs, insertCpuMs };
  } finally {
    await client.query("DELETE FROM tasks WHERE user_id = $1", [userId]);
    await client.query("DELETE FROM task_events WHERE user_id = $1", [userId]);
    await client.end();
  }
}

function shareRows(side: DatabaseSide, apiOn: Load[]): Figure[] {
  const trigger = median(side.triggerMs);
  const rows: Figure[] = [
    figure({
      id: "B2",
      figure: "task_events trigger: time per row written",
      ours: trigger,
      baseline: null,
      unit: "ms",
      goal: "—",
      note: `EXPLAIN ANALYZE of a ${BULK_ROWS}-row INSERT (rolled back), ${EXPLAIN_RUNS} runs: the trigger's own time per call, median; runs ${side.triggerMs.map((ms) => ms.toFixed(4)).join(", ")}`,
    }),
  ];
  if (side.insertCpuMs === undefined) return rows;
  const api = median(apiOn.map((l) => l.cpuMsPerRequest).filter((v): v is number => v !== null));
  const share = trigger / (api + side.insertCpuMs);
  rows.push(
    figure({
      id: "B2",
      figure: "addTask: the trigger's share of a request's CPU (its throughput cost when CPU-bound)",
      ours: share * 100,
      baseline: null,
      unit: "%",
      goal: `≤ ${MAX_COST * 100}%`,
      met: share <= MAX_COST,
      note: `trigger time per row / (API CPU per addTask + Postgres CPU per single-row INSERT) = ${trigger.toFixed(4)} / (${api.toFixed(3)} + ${side.insertCpuMs.toFixed(3)}); leaves out the load generator's CPU, so it overstates the share`,
    }),
  );
  return rows;
}
