/** The soak's figures (bench/soak-results.json) and its terminal report. */
import os from "node:os";
import { asciiPlot } from "./ascii-plot.js";
import { percentileOfSorted as percentile } from "./lib/figure.js";
import { clean, type SoakRun } from "./soak-run.js";
import { OP_KIND, type OpKind, type RequestRecord } from "./soak-load.js";

/** The least share of requests outside the outage window that must succeed (SC-006). */
export const SUCCESS_GOAL = 0.99;

/** Heap after a full GC over the last two thirds of the run: flat when its highest is within this of its lowest (issue 22). */
export const FLAT_HEAP_TOLERANCE = 0.1;

export interface HeapAfterGc {
  /** Every measurement: seconds since the load started, MB of heap in use after a full GC, RSS then. */
  samples: { t: number; heapMb: number; rssMb: number }[];
  /** The last two thirds of the run (from a third of the load's duration to the end sample after it). */
  window: { fromS: number; toS: number; samples: number };
  minMb: number;
  maxMb: number;
  /** (max − min) / min over the window. */
  spread: number;
  /** Least-squares slope over the window, MB per minute. */
  slopeMbPerMin: number;
  flat: boolean;
}

interface Latency {
  p50: number;
  p99: number;
  max: number;
  count: number;
}

interface Tally {
  requests: number;
  succeeded: number;
  successRate: number;
  failuresByCode: Record<string, number>;
}

export interface SoakSummary {
  command: string;
  finishedAt: string;
  machine: { cpus: number; cpuModel: string; memoryGb: number; node: string; platform: string; loadAverage: { start: number[]; end: number[] } };
  options: SoakRun["options"];
  requests: {
    all: Tally;
    /**
     * Requests that were not in flight at any moment between the stop and Postgres accepting connections
     * again, nor while the API stood still writing a heap snapshot (--heap-snapshots).
     */
    outsideOutage: Tally;
    /** outsideOutage split by read, write and chat. */
    outsideOutageByKind: Partial<Record<OpKind, Tally>>;
    duringOutage: Tally;
    /** Requests in flight while the API wrote a heap snapshot: the measurement's own pause, not the API's. */
    duringSnapshots: Tally;
    byOperation: Record<string, Tally>;
    sendMessageRetries: number;
    skippedByClient: number;
    /** Seconds after Postgres was back until the end of the last failed request. */
    lastFailureAfterRestartS: number | null;
  };
  /** Of the requests outside the outage that succeeded. */
  latencyMs: { all: Latency } & Partial<Record<OpKind, Latency>>;
  outage: { stopAtS: number; downAtS: number; startAtS: number; upAtS: number; downForMs: number };
  rss: {
    samples: { t: number; mb: number; heapMb: number; load1: number }[];
    startMb: number;
    peakMb: number;
    endMb: number;
    /** The least heap in use from the second minute on, per minute: where major GCs bring it back to. */
    heapFloorMb: number[];
  };
  heapAfterGc: HeapAfterGc;
  events: SoakRun["events"] & { convergedAfterMs: number; converged: boolean; subscriberEndings: string[]; duplicateExamples: string[] };
  writes: SoakRun["writes"];
  chat: SoakRun["chat"];
  apiLogs: SoakRun["logs"];
  apiExit: SoakRun["apiExit"] | null;
  pass: boolean;
  failures: string[];
}

function latency(records: readonly RequestRecord[]): Latency {
  const sorted = records.map((record) => record.end - record.start).sort((a, b) => a - b);
  const round = (value: number) => Math.round(value * 10) / 10;
  return { p50: round(percentile(sorted, 50)), p99: round(percentile(sorted, 99)), max: round(sorted.at(-1) ?? Number.NaN), count: sorted.length };
}

function tally(records: readonly RequestRecord[]): Tally {
  const failuresByCode: Record<string, number> = {};
  let succeeded = 0;
  for (const record of records) {
    if (record.ok) succeeded += 1;
    else failuresByCode[record.code ?? "unknown"] = (failuresByCode[record.code ?? "unknown"] ?? 0) + 1;
  }
  return { requests: records.length, succeeded, successRate: records.length === 0 ? 1 : succeeded / records.length, failuresByCode };
}

const MB = 1024 * 1024;
const round2 = (value: number) => Math.round(value * 100) / 100;
const round4 = (value: number) => Math.round(value * 10_000) / 10_000;

export function summarize(run: SoakRun, command: string): SoakSummary {
  const { outage } = run;
  const during = (record: RequestRecord) => record.end >= outage.stopAt && record.start <= outage.upAt;
  const paused = (record: RequestRecord) => run.pauses.some((pause) => record.end >= pause.start && record.start <= pause.end);
  const inside = run.records.filter(during);
  const outside = run.records.filter((record) => !during(record) && !paused(record));
  const okOutside = outside.filter((record) => record.ok);
  const byKind: Partial<Record<OpKind, Latency>> = {};
  for (const kind of ["read", "write", "chat"] as const) {
    const records = okOutside.filter((record) => OP_KIND[record.op] === kind);
    if (records.length > 0) byKind[kind] = latency(records);
  }
  const byOperation: Record<string, Tally> = {};
  for (const op of new Set(run.records.map((record) => record.op))) byOperation[op] = tally(run.records.filter((record) => record.op === op));
  const lastFailure = Math.max(...run.records.filter((record) => !record.ok && record.end > outage.upAt).map((record) => record.end));

  const samples = run.rss.map((sample) => ({
    t: Math.round(sample.t),
    mb: round2(sample.rssBytes / MB),
    heapMb: round2(sample.heapUsedBytes / MB),
    load1: round2(sample.load1),
  }));
  const summary: SoakSummary = {
    command,
    finishedAt: new Date().toISOString(),
    machine: {
      cpus: os.cpus().length,
      cpuModel: os.cpus()[0]?.model ?? "unknown",
      memoryGb: Math.round(os.totalmem() / 1024 ** 3),
      node: process.version,
      platform: `${os.platform()} ${os.release()}`,
      loadAverage: { start: run.loadAverage.start.map(round2), end: run.loadAverage.end.map(round2) },
    },
    options: run.options,
    requests: {
      all: tally(run.records),
      outsideOutage: tally(outside),
      outsideOutageByKind: Object.fromEntries(
        (["read", "write", "chat"] as const).map((kind) => [kind, tally(outside.filter((record) => OP_KIND[record.op] === kind))]),
      ),
      duringOutage: tally(inside),
      duringSnapshots: tally(run.records.filter((record) => !during(record) && paused(record))),
      byOperation,
      sendMessageRetries: run.records.filter((record) => record.retry).length,
      skippedByClient: run.skipped,
      lastFailureAfterRestartS: Number.isFinite(lastFailure) ? round2((lastFailure - outage.upAt) / 1000) : null,
    },
    latencyMs: { all: latency(okOutside), ...byKind },
    outage: {
      stopAtS: round2(outage.stopAt / 1000),
      downAtS: round2(outage.downAt / 1000),
      startAtS: round2(outage.startAt / 1000),
      upAtS: round2(outage.upAt / 1000),
      downForMs: Math.round(outage.upAt - outage.downAt),
    },
    rss: {
      samples,
      startMb: samples[0]?.mb ?? Number.NaN,
      peakMb: Math.max(...samples.map((sample) => sample.mb)),
      endMb: samples.at(-1)?.mb ?? Number.NaN,
      heapFloorMb: heapFloors(samples),
    },
    heapAfterGc: heapAfterGc(run),
    events: {
      ...run.events,
      convergedAfterMs: Math.round(run.convergedAfterMs),
      converged: run.converged,
      subscriberEndings: run.subscriberEndings,
      duplicateExamples: run.duplicateExamples,
    },
    writes: run.writes,
    chat: run.chat,
    apiLogs: run.logs,
    apiExit: run.apiExit ?? null,
    pass: false,
    failures: [],
  };
  const failures: string[] = [];
  if (run.apiExit) failures.push(`the API process exited by itself at ${run.apiExit.atS} s (code ${run.apiExit.code}, signal ${run.apiExit.signal})`);
  if (summary.requests.outsideOutage.successRate < SUCCESS_GOAL) {
    failures.push(`success rate outside the outage ${percent(summary.requests.outsideOutage.successRate)} < ${percent(SUCCESS_GOAL)}`);
  }
  if (!clean(run.events))
    failures.push("subscribers did not get exactly what was committed (lost, duplicated, foreign, out of order or ended events)");
  if (run.writes.missing > 0) failures.push(`${run.writes.missing} acknowledged task writes are not in the database as acknowledged`);
  if (run.chat.missing > 0) failures.push(`${run.chat.missing} acknowledged sendMessage user messages are not stored`);
  if (run.chat.duplicateToolCalls > 0) failures.push(`${run.chat.duplicateToolCalls} chat tool calls ran twice`);
  if (!summary.heapAfterGc.flat) {
    failures.push(
      `heap after GC not flat over the last two thirds: ${summary.heapAfterGc.minMb}–${summary.heapAfterGc.maxMb} MB (${percent(summary.heapAfterGc.spread)} > ${percent(FLAT_HEAP_TOLERANCE)})`,
    );
  }
  summary.failures = failures;
  summary.pass = failures.length === 0;
  return summary;
}

/** The heap-after-GC series and whether it is flat over the last two thirds of the run. */
export function heapAfterGc(run: Pick<SoakRun, "heapAfterGc" | "options">): HeapAfterGc {
  const samples = run.heapAfterGc.map((sample) => ({
    t: Math.round(sample.t),
    heapMb: round2(sample.heapUsedBytes / MB),
    rssMb: round2(sample.rssBytes / MB),
  }));
  const fromS = run.options.durationMs / 3000;
  const window = samples.filter((sample) => sample.t >= fromS);
  const values = window.map((sample) => sample.heapMb);
  const minMb = Math.min(...values);
  const maxMb = Math.max(...values);
  const spread = round4((maxMb - minMb) / minMb);
  // Two points are no trend: too short a run cannot be called flat.
  const flat = window.length >= 3 && spread <= FLAT_HEAP_TOLERANCE;
  return {
    samples,
    window: { fromS: round2(fromS), toS: window.at(-1)?.t ?? Number.NaN, samples: window.length },
    minMb,
    maxMb,
    spread,
    slopeMbPerMin: round2(slope(window.map((sample) => ({ x: sample.t / 60, y: sample.heapMb })))),
    flat,
  };
}

function slope(points: readonly { x: number; y: number }[]): number {
  if (points.length < 2) return Number.NaN;
  const meanX = points.reduce((sum, point) => sum + point.x, 0) / points.length;
  const meanY = points.reduce((sum, point) => sum + point.y, 0) / points.length;
  const covariance = points.reduce((sum, point) => sum + (point.x - meanX) * (point.y - meanY), 0);
  const variance = points.reduce((sum, point) => sum + (point.x - meanX) ** 2, 0);
  return variance === 0 ? Number.NaN : covariance / variance;
}

/** Per whole minute after the first (a last, partial one left out): the least heap in use sampled in it. */
function heapFloors(samples: readonly { t: number; heapMb: number }[]): number[] {
  const floors = new Map<number, number>();
  const end = samples.at(-1)?.t ?? 0;
  for (const sample of samples) {
    const minute = Math.floor(sample.t / 60);
    if (minute === 0 || (minute + 1) * 60 > end) continue;
    floors.set(minute, Math.min(floors.get(minute) ?? Number.POSITIVE_INFINITY, sample.heapMb));
  }
  return [...floors.values()];
}

function percent(rate: number): string {
  return `${(rate * 100).toFixed(rate === 1 ? 0 : 2)}%`;
}

function codes(tally: Tally): string {
  const entries = Object.entries(tally.failuresByCode);
  return entries.length === 0 ? "" : ` — ${entries.map(([code, count]) => `${code} ×${count}`).join(", ")}`;
}

/** The RSS curve (or, with "heapMb", the V8 heap in use), with the outage shaded. */
export function rssPlot(summary: SoakSummary, field: "mb" | "heapMb" = "mb"): string {
  return asciiPlot(
    summary.rss.samples.map((sample) => ({ x: sample.t, y: sample[field] })),
    {
      width: 64,
      height: 12,
      formatY: (value) => `${value.toFixed(0)} MB`,
      xLabel: "seconds since the load started",
      spans: [
        { from: summary.outage.stopAtS, to: summary.outage.upAtS, label: `database down (${summary.outage.stopAtS}–${summary.outage.upAtS} s)` },
      ],
    },
  );
}

function heapAfterGcLines(summary: SoakSummary): string[] {
  const heap = summary.heapAfterGc;
  const series = heap.samples.map((sample) => `${sample.t} s ${sample.heapMb}`).join(", ");
  return [
    `API process V8 heap after a full GC (MB), every ${Math.round((heap.samples[1]?.t ?? 0) - (heap.samples[0]?.t ?? 0))} s or so: ${series}`,
    `  last two thirds (${heap.window.fromS}–${heap.window.toS} s, ${heap.window.samples} samples): ${heap.minMb}–${heap.maxMb} MB, spread ${percent(heap.spread)}, trend ${heap.slopeMbPerMin} MB/min: ${heap.flat ? "FLAT" : "NOT FLAT"} (goal: within ${percent(FLAT_HEAP_TOLERANCE)})`,
    asciiPlot(
      heap.samples.map((sample) => ({ x: sample.t, y: sample.heapMb })),
      {
        width: 64,
        height: 8,
        formatY: (value) => `${value.toFixed(0)} MB`,
        xLabel: "seconds since the load started",
        spans: [{ from: summary.outage.stopAtS, to: summary.outage.upAtS, label: "database down" }],
      },
    ),
  ];
}

export function formatReport(summary: SoakSummary): string {
  const { requests, latencyMs, events, machine } = summary;
  const lines = [
    "",
    `Soak: ${Math.round(summary.options.durationMs / 1000)} s, ${summary.options.rate} requests/s, ${summary.options.subscribers} subscribers over ${summary.options.users} users, the API ${summary.options.runtime === "tsx" ? "under tsx" : "bundled, plain node"}`,
    `Machine: ${machine.cpus} × ${machine.cpuModel}, ${machine.memoryGb} GB, Node ${machine.node}; load average ${machine.loadAverage.start.join(" ")} at the start, ${machine.loadAverage.end.join(" ")} at the end`,
    "",
    `Requests: ${requests.all.requests} (${requests.sendMessageRetries} of them sendMessage retries; ${requests.skippedByClient} skipped by the client)`,
    `  success, all:             ${percent(requests.all.successRate)} (${requests.all.succeeded}/${requests.all.requests})${codes(requests.all)}`,
    `  success, outside outage:  ${percent(requests.outsideOutage.successRate)} (${requests.outsideOutage.succeeded}/${requests.outsideOutage.requests})${codes(requests.outsideOutage)}   goal ≥ ${percent(SUCCESS_GOAL)}`,
    ...(["read", "write", "chat"] as const).flatMap((kind) => {
      const t = requests.outsideOutageByKind[kind];
      return t ? [`    ${kind.padEnd(22)} ${percent(t.successRate)} (${t.succeeded}/${t.requests})${codes(t)}`] : [];
    }),
    `  success, during outage:   ${percent(requests.duringOutage.successRate)} (${requests.duringOutage.succeeded}/${requests.duringOutage.requests})${codes(requests.duringOutage)}`,
    `  success, during snapshots: ${percent(requests.duringSnapshots.successRate)} (${requests.duringSnapshots.succeeded}/${requests.duringSnapshots.requests}; the API stood still writing a heap snapshot)`,
    `  last failure after Postgres was back: ${requests.lastFailureAfterRestartS === null ? "none" : `${requests.lastFailureAfterRestartS} s`}`,
    `Latency of successful requests outside the outage (ms): p50 ${latencyMs.all.p50}, p99 ${latencyMs.all.p99}, max ${latencyMs.all.max}`,
    ...(["read", "write", "chat"] as const).flatMap((kind) => {
      const l = latencyMs[kind];
      return l ? [`  ${kind.padEnd(6)} p50 ${l.p50}, p99 ${l.p99}, max ${l.max} (${l.count})`] : [];
    }),
    `Outage: stop asked at ${summary.outage.stopAtS} s, Postgres down at ${summary.outage.downAtS} s, started at ${summary.outage.startAtS} s, accepting again at ${summary.outage.upAtS} s (${summary.outage.downForMs} ms down)`,
    "",
    `Events (every subscriber's against the database, exact sets; settled after ${events.convergedAfterMs} ms):`,
    `  taskChanged:  ${events.task.subscribers} subscribers, ${events.task.received} received, ${events.task.expected} final states owed: lost ${events.task.lost}, duplicated ${events.task.duplicates}, foreign ${events.task.foreign}, ended early ${events.task.endedEarly}`,
    `  messageAdded: ${events.message.subscribers} subscribers, ${events.message.received} received, ${events.message.expected} owed: lost ${events.message.lost}, duplicated ${events.message.duplicates}, foreign ${events.message.foreign}, out of order ${events.message.outOfOrder}, ended early ${events.message.endedEarly}`,
    `  committed: ${events.tasksCommitted.live} live tasks, ${events.tasksCommitted.deleted} deleted, ${events.messagesCommitted} messages (${events.unsettledMessages} not settled, not owed)`,
    ...events.subscriberEndings.map((ending) => `  ${ending}`),
    ...events.duplicateExamples.map((example) => `  duplicate: ${example}`),
    `Writes: ${summary.writes.checked} acknowledged task writes checked, ${summary.writes.missing} not as acknowledged`,
    ...summary.writes.examples.map((example) => `  ${example}`),
    `Chat: ${summary.chat.acknowledged} sendMessage acknowledged, ${summary.chat.missing} missing, ${summary.chat.duplicateToolCalls} tool calls run twice; ${summary.chat.modelCalls} calls to the fake model`,
    "",
    `API process RSS (MB): ${summary.rss.startMb} at the start, peak ${summary.rss.peakMb}, ${summary.rss.endMb} at the end`,
    rssPlot(summary),
    "",
    `API process V8 heap in use (MB): lowest per minute after the first ${summary.rss.heapFloorMb.join(", ")} (the floor after major GCs: flat means no leak)`,
    rssPlot(summary, "heapMb"),
    "",
    ...heapAfterGcLines(summary),
    "",
    `API log lines at warn and above: ${summary.apiLogs.length === 0 ? "none" : ""}`,
    ...summary.apiLogs.slice(0, 12).map((entry) => `  ${entry.level} ×${entry.count}: ${entry.msg}${entry.err ? ` (first: ${entry.err})` : ""}`),
    ...(summary.apiExit
      ? [
          "",
          `The API process EXITED by itself at ${summary.apiExit.atS} s (code ${summary.apiExit.code}, signal ${summary.apiExit.signal}); its last output:`,
          ...summary.apiExit.tail.map((line) => `  ${line}`),
        ]
      : []),
    "",
    summary.pass ? "PASS" : `FAIL: ${summary.failures.join("; ")}`,
  ];
  return lines.join("\n");
}
