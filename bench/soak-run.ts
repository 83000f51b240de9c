/**
 * The soak: the API in its own process (bench/api-server.ts) on a test-owned
 * embedded Postgres that this run stops and starts, the real cohere-ai SDK
 * in the API talking to the fake Cohere over loopback, many users with JWTs
 * of the test secret, graphql-ws subscribers across them, and a paced mixed
 * load (bench/soak-load.ts). In the middle the database goes down for a few
 * seconds and comes back. Afterwards every subscriber's events are compared
 * with what was committed (bench/soak-events.ts) and every acknowledged
 * write is looked for.
 */
import os from "node:os";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import pg from "pg";
import { startFakeCohere, textReply, toolCallReply, type RecordedRequest, type ScriptedReply } from "../tests/helpers/fake-cohere.js";
import { startOwnCluster } from "../tests/helpers/own-cluster.js";
import { TEST_JWT_SECRET, tokenFor } from "../tests/helpers/tokens.js";
import { parseId } from "../src/lib/ids.js";
import { ApiProcess } from "./api-process.js";
import { pollUntil } from "./lib/poll.js";
import { Subscribers, type EventsVerdict } from "./soak-events.js";
import { Load, type AckedTask, type RequestRecord, type SoakUser } from "./soak-load.js";

export interface SoakOptions {
  durationMs: number;
  subscribers: number;
  users: number;
  /** Requests started per second. */
  rate: number;
  /** How long the database stays down. */
  outageMs: number;
  /** How the API runs: bundled under plain node as in production, or the TypeScript under tsx (bench/api-process.ts). */
  runtime: "bundle" | "tsx";
  /** Progress lines (default: none). */
  log?: (line: string) => void;
  /** A folder for two heap snapshots of the API (after a full GC): at a third of the run, and at the end once the load has settled. */
  heapSnapshots?: string;
}

/** How often the heap is measured after a full GC (the floor a leak raises); a GC stops the API for a moment. */
const GC_SAMPLE_MS = 15_000;

export interface GcSample {
  /** Seconds since the load started. */
  t: number;
  heapUsedBytes: number;
  rssBytes: number;
}

export interface RssSample {
  /** Seconds since the load started. */
  t: number;
  rssBytes: number;
  heapUsedBytes: number;
  subscribers: number;
  /** The machine's 1-minute load average then. */
  load1: number;
}

export interface OutageTimes {
  /** ms since the load started: the stop was asked for, Postgres had exited, the start was asked for, Postgres accepted connections again. */
  stopAt: number;
  downAt: number;
  startAt: number;
  upAt: number;
}

export interface SoakRun {
  options: Omit<SoakOptions, "log" | "heapSnapshots">;
  records: RequestRecord[];
  skipped: number;
  outage: OutageTimes;
  rss: RssSample[];
  /** The heap after a full GC, every GC_SAMPLE_MS and once more at the end: what the API retains. */
  heapAfterGc: GcSample[];
  /** The heap snapshots written (--heap-snapshots). */
  snapshots: string[];
  /** ms since the load started: when the API stood still writing a heap snapshot (it answers nothing meanwhile). */
  pauses: { start: number; end: number }[];
  events: EventsVerdict;
  /** ms after the load ended until every subscriber had everything owed (or the wait gave up). */
  convergedAfterMs: number;
  converged: boolean;
  writes: { acknowledged: number; checked: number; missing: number; examples: string[] };
  chat: { acknowledged: number; missing: number; duplicateToolCalls: number; modelCalls: number };
  /** The API's log lines at warn and above, counted by level and message, with the first one's error. */
  logs: { level: string; msg: string; count: number; err?: string }[];
  loadAverage: { start: number[]; end: number[] };
  subscriberEndings: string[];
  duplicateExamples: string[];
  /** The API process ended by itself (a crash): when (s since the load started), how, and its last non-log output. */
  apiExit: { atS: number; code: number | null; signal: string | null; tail: string[] } | undefined;
}

const LEVELS: Record<number, string> = { 40: "warn", 50: "error", 60: "fatal" };

export async function runSoak(options: SoakOptions): Promise<SoakRun> {
  const log = options.log ?? (() => {});
  const loadStart = os.loadavg();
  log(`starting a test-owned Postgres, the fake Cohere and the API process (load average ${loadStart.map((v) => v.toFixed(2)).join(" ")})`);
  const cluster = await startOwnCluster();
  const fake = await startFakeCohere();
  let modelCalls = 0;
  fake.setFallback(scriptedModel);
  const logCounts = new Map<string, { count: number; err?: string }>();
  let api: ApiProcess | undefined;
  let subscribers: Subscribers | undefined;
  try {
    api = await ApiProcess.start({
      env: {
        DATABASE_URL: cluster.url,
        AUTH_JWT_SECRET: TEST_JWT_SECRET,
        COHERE_API_KEY: "soak-fake-key",
        COHERE_BASE_URL: fake.baseUrl,
        LOG_LEVEL: "warn",
      },
      onLog: (line) => countLogLine(logCounts, line),
      runtime: options.runtime,
    });
    log(`API process ${api.pid}: ${api.runtimeDescription}`);
    const stamp = Date.now().toString(36);
    const users: SoakUser[] = await Promise.all(
      Array.from({ length: options.users }, async (_, index) => {
        const id = `soak-${stamp}-${index}`;
        return { id, token: await tokenFor(id, { expiresIn: "2h" }) };
      }),
    );

    log(`opening ${options.subscribers} graphql-ws subscribers over ${options.users} users`);
    subscribers = new Subscribers(users);
    const before = (await api.stats()).established;
    await subscribers.open(api.port, options.subscribers);
    await pollUntil(
      async () => (await api!.stats()).established >= before + options.subscribers,
      120_000,
      "every subscription to be established",
      50,
    );

    const t0 = performance.now();
    const since = () => performance.now() - t0;
    subscribers.clock = since;
    const load = new Load({ port: api.port, users, rate: options.rate, t0 });
    const rss: RssSample[] = [];
    const heapAfterGc: GcSample[] = [];
    const gcSample = async () => {
      const stats = await Promise.race([api!.stats(true).catch(() => undefined), sleep(30_000).then(() => undefined)]);
      if (stats) heapAfterGc.push({ t: since() / 1000, heapUsedBytes: stats.heapUsed, rssBytes: stats.rss });
    };
    let sampling = true;
    const sampler = (async () => {
      let lastGc = 0;
      while (sampling) {
        // A process that has died answers nothing: its death is reported at the end.
        const stats = await Promise.race([api!.stats().catch(() => undefined), sleep(5000).then(() => undefined)]);
        if (stats) {
          rss.push({
            t: since() / 1000,
            rssBytes: stats.rss,
            heapUsedBytes: stats.heapUsed,
            subscribers: stats.subscribers,
            load1: os.loadavg()[0]!,
          });
        }
        if (since() - lastGc >= GC_SAMPLE_MS) {
          lastGc = since();
          await gcSample();
        }
        // The fake keeps every request it got; the soak only needs their number.
        modelCalls += fake.requests.length;
        fake.requests.length = 0;
        await sleep(2000);
      }
    })();
    const snapshots: string[] = [];
    const pauses: SoakRun["pauses"] = [];
    const snapshot = async (name: string) => {
      if (options.heapSnapshots === undefined) return;
      const start = since();
      const file = await api!.heapSnapshot(path.resolve(options.heapSnapshots, `soak-${name}.heapsnapshot`)).catch(() => undefined);
      pauses.push({ start, end: since() });
      if (file === undefined) return;
      snapshots.push(file);
      log(`  heap snapshot (${name}) written to ${file}`);
    };
    const thirdSnapshot = sleep(options.durationMs / 3).then(() => snapshot("third"));
    const progress = setInterval(() => {
      const done = load.records.length;
      const failed = load.records.filter((record) => !record.ok).length;
      log(`  ${Math.round(since() / 1000)} s: ${done} requests (${failed} failed), ${load.open} open, ${subscribers!.received} events received`);
    }, 15_000);

    log(
      `load: ${options.rate} requests/s for ${Math.round(options.durationMs / 1000)} s; the database goes down for ${options.outageMs} ms in the middle`,
    );
    const running = load.run(t0 + options.durationMs);
    await sleep(Math.max(0, t0 + options.durationMs / 2 - performance.now()));
    const stopAt = since();
    log(`  stopping Postgres at ${Math.round(stopAt / 1000)} s`);
    await cluster.stop();
    const downAt = since();
    await sleep(options.outageMs);
    const startAt = since();
    await cluster.start();
    const upAt = since();
    log(`  Postgres back at ${Math.round(upAt / 1000)} s (down ${Math.round(upAt - downAt)} ms)`);
    await running;
    await load.settle();
    const loadEnd = performance.now();
    clearInterval(progress);
    log(`load done: ${load.records.length} requests; waiting for the subscribers to get everything owed`);

    // Late events have up to a minute to arrive; the check is repeated until it is clean.
    let events = await subscribers.verify(cluster.url);
    while (!clean(events) && performance.now() - loadEnd < 60_000) {
      await sleep(2000);
      events = await subscribers.verify(cluster.url);
    }
    const convergedAfterMs = performance.now() - loadEnd;
    sampling = false;
    await sampler;
    await thirdSnapshot;
    // What is retained once the load is over: the last point of the series, and the end snapshot.
    await gcSample();
    await snapshot("end");
    modelCalls += fake.requests.length;

    return {
      options: {
        durationMs: options.durationMs,
        subscribers: options.subscribers,
        users: options.users,
        rate: options.rate,
        outageMs: options.outageMs,
        runtime: options.runtime,
      },
      records: load.records,
      skipped: load.skipped,
      outage: { stopAt, downAt, startAt, upAt },
      rss,
      heapAfterGc,
      snapshots,
      pauses,
      events,
      convergedAfterMs,
      converged: clean(events),
      writes: await checkWrites(cluster.url, load.acked),
      chat: { ...(await checkChat(cluster.url, users, load.sentMessages)), modelCalls },
      logs: [...logCounts]
        .map(([key, entry]) => ({ ...(JSON.parse(key) as { level: string; msg: string }), ...entry }))
        .sort((a, b) => b.count - a.count),
      loadAverage: { start: loadStart, end: os.loadavg() },
      subscriberEndings: subscribers.endings(),
      duplicateExamples: subscribers.duplicateExamples,
      apiExit: api.unexpectedExit && {
        atS: Math.round((api.unexpectedExit.at - t0) / 100) / 10,
        code: api.unexpectedExit.code,
        signal: api.unexpectedExit.signal,
        tail: api.unexpectedExit.tail,
      },
    };
  } finally {
    subscribers?.close();
    await api?.stop();
    await fake.close();
    await cluster.dispose();
  }
}

/** No event lost, duplicated, foreign or out of order, no subscription ended early. */
export function clean(events: EventsVerdict): boolean {
  return [events.task, events.message].every(
    (feed) => feed.lost === 0 && feed.duplicates === 0 && feed.foreign === 0 && feed.outOfOrder === 0 && feed.endedEarly === 0,
  );
}

/**
 * The fake model: a user message gets an add_task call, a tool result gets
 * a short answer, both streamed a few milliseconds per event.
 */
function scriptedModel(request: RecordedRequest): ScriptedReply {
  const last = request.body.messages.at(-1);
  if (last?.role === "tool") return textReply("Done: it is on your list now.", { eventDelayMs: 3 });
  const content = typeof last?.content === "string" ? last.content : JSON.stringify(last?.content ?? "");
  const title = /add: ([^"\\]+)/.exec(content)?.[1]?.trim() ?? "soak chat task";
  return { ...toolCallReply([{ name: "add_task", args: { title } }], "I will add the task."), eventDelayMs: 3 };
}

function countLogLine(counts: Map<string, { count: number; err?: string }>, line: string): void {
  let entry: { level?: number; msg?: string; err?: { type?: string; code?: string; message?: string } };
  try {
    entry = JSON.parse(line) as typeof entry;
  } catch {
    entry = { level: 50, msg: `(not JSON) ${line.slice(0, 120)}` };
  }
  const key = JSON.stringify({ level: LEVELS[entry.level ?? 0] ?? String(entry.level), msg: entry.msg ?? "" });
  const known = counts.get(key);
  if (known) {
    known.count += 1;
    return;
  }
  // The first one's error, in short: enough to tell a refused connection from a bug.
  const err = entry.err
    ? `${entry.err.type ?? "Error"}${entry.err.code ? ` ${entry.err.code}` : ""}: ${(entry.err.message ?? "").replace(/\s+/g, " ").slice(0, 160)}`
    : undefined;
  counts.set(key, { count: 1, ...(err === undefined ? {} : { err }) });
}

/** Every write the API acknowledged (and nothing uncertain followed) is in the database as acknowledged. */
async function checkWrites(url: string, acked: Map<string, AckedTask>): Promise<SoakRun["writes"]> {
  const certain = [...acked].filter(([, task]) => task.certain);
  const ids = certain.map(([globalId]) => parseId(globalId, "id", "Task"));
  const sql = new pg.Client({ connectionString: url });
  sql.on("error", () => {});
  await sql.connect();
  try {
    const live = await sql.query<{ id: string; title: string; description: string | null; completed: boolean; updated_at: Date }>(
      "SELECT id, title, description, completed, updated_at FROM tasks WHERE id = ANY($1::uuid[])",
      [ids],
    );
    const gone = await sql.query<{ id: string }>("SELECT id FROM deleted_tasks WHERE id = ANY($1::uuid[])", [ids]);
    const liveById = new Map(live.rows.map((row) => [row.id, row]));
    const goneIds = new Set(gone.rows.map((row) => row.id));
    const examples: string[] = [];
    let missing = 0;
    certain.forEach(([globalId, task], index) => {
      const id = ids[index]!;
      const row = liveById.get(id);
      let ok: boolean;
      if (task.state === "deleted") ok = row === undefined && goneIds.has(id);
      else {
        ok =
          row !== undefined &&
          row.title === task.state.title &&
          (row.description ?? null) === (task.state.description ?? null) &&
          row.completed === task.state.completed &&
          row.updated_at.toISOString() === task.state.updatedAt;
      }
      if (ok) return;
      missing += 1;
      if (examples.length < 5)
        examples.push(
          `${globalId}: acknowledged ${JSON.stringify(task.state)}, found ${JSON.stringify(row ?? (goneIds.has(id) ? "deleted" : "nothing"))}`,
        );
    });
    return { acknowledged: acked.size, checked: certain.length, missing, examples };
  } finally {
    await sql.end();
  }
}

/**
 * Every acknowledged sendMessage's user message is stored, and no turn ran
 * its tool call twice: each send asks for a task with a title of its own, so
 * two tasks with one title are a duplicated add_task (a retry that re-ran it).
 */
async function checkChat(
  url: string,
  users: SoakUser[],
  sent: Map<string, { user: number; userMessageId: string }>,
): Promise<{ acknowledged: number; missing: number; duplicateToolCalls: number }> {
  const sql = new pg.Client({ connectionString: url });
  sql.on("error", () => {});
  await sql.connect();
  try {
    const { rows } = await sql.query<{ client_message_id: string; n: number }>(
      "SELECT client_message_id, count(*)::int AS n FROM messages WHERE user_id = ANY($1) AND client_message_id IS NOT NULL GROUP BY client_message_id",
      [users.map((user) => user.id)],
    );
    const stored = new Map(rows.map((row) => [row.client_message_id, row.n]));
    let missing = 0;
    for (const clientMessageId of sent.keys()) if (!stored.has(clientMessageId)) missing += 1;
    const twice = await sql.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM (
         SELECT title FROM (SELECT title FROM tasks WHERE user_id = ANY($1) UNION ALL SELECT title FROM deleted_tasks WHERE user_id = ANY($1)) AS t
         WHERE title LIKE 'soak chat task %' GROUP BY title HAVING count(*) > 1) AS d`,
      [users.map((user) => user.id)],
    );
    return { acknowledged: sent.size, missing, duplicateToolCalls: twice.rows[0]?.n ?? 0 };
  } finally {
    await sql.end();
  }
}
