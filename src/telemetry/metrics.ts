import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from "prom-client";
import type { SubscriptionKind } from "../realtime/admission.js";
import type { PoolStats } from "../db/client.js";

/**
 * The Prometheus metrics of one app instance, in a registry of its own (two
 * apps in one process, as in the tests, never share or clash). Loaded only
 * when METRICS_PORT is set: prom-client is not part of a start without it.
 *
 * Labels carry bounded values only: operation names once seen in a valid
 * document (at most OPERATION_NAMES_CAP, then "other"), error and stop codes,
 * tool names, kinds. Never a user id, a token, a key or message text.
 * The GraphQL names follow @envelop/prometheus (Yoga's Prometheus plugin).
 */

/** Distinct operation names that become labels; later ones count as "other". */
export const OPERATION_NAMES_CAP = 100;
/** Distinct error codes that become labels; later ones count as "OTHER". */
const ERROR_CODES_CAP = 50;
const MAX_NAME_LENGTH = 100;

/** Seconds, from a few ms (a cached query) to two minutes (a whole chat turn's model calls). */
const DURATION_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120];
/** Seconds from commit to delivery: a few ms when live, seconds after a listener outage. */
const LAG_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];

/** What the scrape reads at collect time, from the app's parts. */
export interface MetricSources {
  /** Open subscriptions by kind (the hub's Admission). */
  subscribers(): ReadonlyMap<SubscriptionKind, number>;
  /** graphql-ws sockets open. */
  webSockets(): number;
  /** The database pool's counts; undefined while there is no pool yet (the neon driver before its first query). */
  pool(): PoolStats | undefined;
}

/** A bounded set of label values: the first `cap` distinct admitted values, the rest `overflow`. */
class BoundedLabel {
  private readonly admitted = new Set<string>();

  constructor(
    private readonly cap: number,
    private readonly overflow: string,
  ) {}

  admit(value: string): void {
    if (this.admitted.size < this.cap && value.length <= MAX_NAME_LENGTH) this.admitted.add(value);
  }

  label(value: string): string {
    return this.admitted.has(value) ? value : this.overflow;
  }
}

export type OperationType = "query" | "mutation" | "subscription" | "unknown";

/** The labels of one GraphQL operation. */
export interface OperationLabels {
  operationName: string;
  operationType: OperationType;
}

export class GraphQLMetrics {
  private readonly names = new BoundedLabel(OPERATION_NAMES_CAP, "other");
  private readonly codes = new BoundedLabel(ERROR_CODES_CAP, "OTHER");
  private readonly requests: Counter<"operationName" | "operationType">;
  private readonly duration: Histogram<"operationName" | "operationType">;
  private readonly errors: Counter<"operationName" | "operationType" | "code">;
  private readonly http: Histogram<"method" | "statusCode" | "operationName" | "operationType">;

  constructor(registers: Registry[]) {
    const operation = ["operationName", "operationType"] as const;
    this.requests = new Counter({ name: "graphql_envelop_request", help: "GraphQL operations executed", labelNames: operation, registers });
    this.duration = new Histogram({
      name: "graphql_envelop_request_duration",
      help: "Time executing a query or mutation, in seconds",
      labelNames: operation,
      buckets: DURATION_BUCKETS,
      registers,
    });
    this.errors = new Counter({
      name: "graphql_envelop_error_result",
      help: "Errors in GraphQL results (parse, validation, execution), by the code the client got",
      labelNames: [...operation, "code"],
      registers,
    });
    this.http = new Histogram({
      name: "graphql_yoga_http_duration",
      help: "Time from an HTTP request to /graphql to its response, in seconds",
      labelNames: ["method", "statusCode", ...operation],
      buckets: DURATION_BUCKETS,
      registers,
    });
  }

  /** A document that validated: its operation's name may become a label. */
  admitName(name: string | undefined): void {
    if (name !== undefined) this.names.admit(name);
  }

  labels(name: string | undefined, type: OperationType): OperationLabels {
    return { operationName: name === undefined ? "anonymous" : this.names.label(name), operationType: type };
  }

  executed(labels: OperationLabels, seconds: number | undefined): void {
    this.requests.inc(labels);
    if (seconds !== undefined) this.duration.observe(labels, seconds);
  }

  failed(labels: OperationLabels, code: string): void {
    this.codes.admit(/^[A-Z][A-Z0-9_]*$/.test(code) ? code : "OTHER");
    this.errors.inc({ ...labels, code: this.codes.label(code) });
  }

  answered(method: string, status: number, labels: OperationLabels, seconds: number): void {
    this.http.observe({ method: method === "GET" || method === "POST" ? method : "other", statusCode: String(status), ...labels }, seconds);
  }
}

export class ChatMetrics {
  private readonly turns: Counter<"status" | "stop_code">;
  private readonly modelCalls: Histogram<"outcome">;
  private readonly tokens: Counter<"direction">;
  private readonly toolCalls: Counter<"tool" | "outcome">;

  constructor(registers: Registry[]) {
    this.turns = new Counter({
      name: "chat_turns_total",
      help: "Chat turns run by this instance, by how they ended (a pause for approval counts as REQUIRES_ACTION)",
      labelNames: ["status", "stop_code"],
      registers,
    });
    this.modelCalls = new Histogram({
      name: "chat_model_call_duration_seconds",
      help: "One model call, retries included, until its stream ended",
      labelNames: ["outcome"],
      buckets: DURATION_BUCKETS,
      registers,
    });
    this.tokens = new Counter({
      name: "chat_model_tokens_total",
      help: "Billed tokens the model reported, in (prompt) and out (answer)",
      labelNames: ["direction"],
      registers,
    });
    this.toolCalls = new Counter({
      name: "chat_tool_calls_total",
      help: "Tool calls the assistant ran, by tool and outcome (ok, error: the tool refused; failed: it threw)",
      labelNames: ["tool", "outcome"],
      registers,
    });
  }

  turnEnded(status: string, stopCode: string): void {
    this.turns.inc({ status, stop_code: stopCode });
  }

  modelCall(outcome: string, seconds: number, usage: { inputTokens: number; outputTokens: number } | undefined): void {
    this.modelCalls.observe({ outcome }, seconds);
    if (!usage) return;
    this.tokens.inc({ direction: "in" }, usage.inputTokens);
    this.tokens.inc({ direction: "out" }, usage.outputTokens);
  }

  toolCall(tool: string, outcome: "ok" | "error" | "failed"): void {
    this.toolCalls.inc({ tool, outcome });
  }
}

export class RealtimeMetrics {
  private readonly lag: Histogram<"kind">;
  private readonly reconnects: Counter;

  constructor(registers: Registry[], sources: MetricSources) {
    this.lag = new Histogram({
      name: "realtime_notification_lag_seconds",
      help: "From a change's commit (its row's database time) to its delivery to subscribers",
      labelNames: ["kind"],
      buckets: LAG_BUCKETS,
      registers,
    });
    this.reconnects = new Counter({
      name: "realtime_listener_reconnects_total",
      help: "Times the realtime transport (LISTEN connection or NATS) came back after losing its connection",
      registers,
    });
    new Gauge({
      name: "realtime_subscribers",
      help: "Open subscriptions on this instance, by kind",
      labelNames: ["kind"],
      registers,
      collect() {
        for (const [kind, count] of sources.subscribers()) this.set({ kind }, count);
      },
    });
    new Gauge({
      name: "websocket_connections_open",
      help: "graphql-ws sockets open on this instance, authenticated or not",
      registers,
      collect() {
        this.set(sources.webSockets());
      },
    });
  }

  delivered(kind: string, committedAt: Date): void {
    this.lag.observe({ kind }, Math.max(0, Date.now() - committedAt.getTime()) / 1000);
  }

  reconnected(): void {
    this.reconnects.inc();
  }
}

function poolGauges(registers: Registry[], pool: MetricSources["pool"]): void {
  const gauge = (name: string, help: string, read: (stats: PoolStats) => number) =>
    new Gauge({
      name,
      help,
      registers,
      collect() {
        const stats = pool();
        if (stats) this.set(read(stats));
      },
    });
  gauge("db_pool_connections_in_use", "Database connections checked out of the pool", (s) => s.total - s.idle);
  gauge("db_pool_connections_idle", "Open database connections waiting in the pool", (s) => s.idle);
  gauge("db_pool_requests_waiting", "Queries waiting for a database connection", (s) => s.waiting);
}

/** One instance's registry and instruments. */
export class AppMetrics {
  readonly registry = new Registry();
  readonly graphql: GraphQLMetrics;
  readonly chat: ChatMetrics;
  readonly realtime: RealtimeMetrics;

  constructor(sources: MetricSources) {
    const registers = [this.registry];
    collectDefaultMetrics({ register: this.registry });
    this.graphql = new GraphQLMetrics(registers);
    this.chat = new ChatMetrics(registers);
    this.realtime = new RealtimeMetrics(registers, sources);
    poolGauges(registers, sources.pool);
  }

  /** The text a scrape gets, and its content type. */
  async scrape(): Promise<{ body: string; contentType: string }> {
    return { body: await this.registry.metrics(), contentType: this.registry.contentType };
  }
}
