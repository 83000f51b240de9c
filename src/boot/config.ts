import type { ApprovalPolicy } from "../chat/approval-policy.js";
import { EMBEDDED_DATA_DIR, type DatabaseSettings } from "../db/settings.js";
import { DEFAULT_QUERY_LIMITS } from "../server/limits/query-limit-defaults.js";
import { DEFAULT_WS_SETTINGS, type HttpSettings, type WsSettings } from "../server/settings.js";
import { defaultRequestTimeoutMs } from "../server/timeouts.js";
import { readSettings, type ValuesOf } from "./setting.js";
import { prefixProblem } from "../realtime/nats-prefix.js";
import type { TransportSettings } from "../realtime/transport.js";
import { duration, flag, host, int, matching, natsServers, oneOf, origins, port, secret, text, url } from "./setting-kinds.js";

export type { HttpSettings, WsSettings } from "../server/settings.js";
export { DEFAULT_QUERY_LIMITS } from "../server/limits/query-limit-defaults.js";

export class ConfigError extends Error {
  override name = "ConfigError";
}

const LOG_LEVELS = ["fatal", "error", "warn", "info", "debug", "trace", "silent"] as const;
const POSTGRES = ["postgres", "postgresql"] as const;
const WEB = ["https", "http"] as const;
const APPROVAL_POLICIES = ["destructive", "all", "none"] as const satisfies readonly ApprovalPolicy[];
/** CHAT_APPROVAL_TTL unset: 15 minutes. */
const APPROVAL_TTL_SECONDS = 15 * 60;

/**
 * Every setting, declared once: the environment variable, its kind and
 * bounds, its default and what it does. The tree has the Config object's
 * shape; the README's configuration table is printed from it
 * (`npm run -s config:table`) and .env.example is checked against it
 * (tests/config-docs.test.ts). Defaults that depend on other settings are
 * worked out in resolve() below.
 */
export const SETTINGS = {
  nodeEnv: text("NODE_ENV", {
    default: "development",
    doc: "`production` turns GraphiQL and the web client off and requires auth settings.",
  }),
  port: port("PORT", { default: 4000, doc: "HTTP port." }),
  host: host("HOST", {
    shownDefault: "`127.0.0.1` in development, `0.0.0.0` in production",
    doc: "The address the API listens on; set `HOST=0.0.0.0` in a development container.",
  }),
  shutdownGraceMs: int("SHUTDOWN_GRACE_MS", {
    default: 25_000,
    min: 0,
    max: 600_000,
    doc: "The drain window: on SIGTERM/SIGINT, how long accepted requests and running chat turns may take to finish, in ms (see [Production runtime](#production-runtime)).",
  }),
  logLevel: oneOf("LOG_LEVEL", LOG_LEVELS, {
    default: "info",
    doc: "pino level; logs are JSON lines, each carrying its request's id (`X-Request-Id`, echoed or made).",
  }),
  webUi: flag("WEB_UI", {
    shownDefault: "`true` in development, `false` in production",
    doc: "Serve the web client at `/` (see Web client).",
  }),
  database: {
    url: url("DATABASE_URL", { protocols: POSTGRES, shownDefault: "unset → embedded", doc: "Postgres URL (pooled is fine)." }),
    embeddedDataDir: text("EMBEDDED_DATA_DIR", {
      default: EMBEDDED_DATA_DIR,
      shownDefault: "`./.data/postgres`",
      doc: "Without `DATABASE_URL`: the embedded Postgres' cluster folder, relative to the working directory (its password file sits beside it).",
    }),
    directUrl: url("DIRECT_URL", {
      protocols: POSTGRES,
      shownDefault: "`DATABASE_URL`",
      doc: "Unpooled URL, for migrations, the LISTEN connection and the nats relay's advisory lock.",
    }),
    driver: oneOf("DATABASE_DRIVER", ["pg", "neon"], {
      default: undefined,
      rule: '"pg" or "neon"',
      shownDefault: "`neon` for `*.neon.tech`, else `pg`",
      doc: "`pg` (node-postgres pool) or `neon` (`@neondatabase/serverless`).",
    }),
    poolSize: int("DATABASE_POOL_SIZE", { default: 10, min: 1, max: 1000, doc: "Connections per instance." }),
    connectionTimeoutMs: int("DATABASE_CONNECTION_TIMEOUT_MS", {
      default: 5000,
      min: 1,
      max: 600_000,
      doc: "An exhausted pool fails a query after this many ms (`SERVICE_UNAVAILABLE`), instead of hanging.",
    }),
    statementTimeoutMs: int("DATABASE_STATEMENT_TIMEOUT_MS", {
      default: 10_000,
      min: 0,
      max: 3_600_000,
      doc: "Postgres `statement_timeout` on every pooled connection, in ms (`0`: none).",
    }),
  },
  http: {
    maxBodyBytes: int("MAX_BODY_BYTES", {
      default: 1024 * 1024,
      min: 1024,
      max: 100 * 1024 * 1024,
      doc: "Larger request bodies (and WebSocket messages) are refused with 413.",
    }),
    timeouts: {
      requestMs: int("REQUEST_TIMEOUT_MS", {
        default: undefined,
        min: 100,
        max: 3_600_000,
        shownDefault: "30 s per started MiB of `MAX_BODY_BYTES` (`30000`)",
        doc:
          "A request (headers and body) not received within this many ms gets 408 and its connection is closed; " +
          "a body at the limit must arrive at about 35 KB/s. Answers that take long (SSE, a chat turn) are not cut.",
      }),
      headersMs: int("HEADERS_TIMEOUT_MS", {
        default: 10_000,
        min: 100,
        max: 3_600_000,
        doc: "The same for the request's headers; at most `REQUEST_TIMEOUT_MS`.",
      }),
      keepAliveMs: int("KEEP_ALIVE_TIMEOUT_MS", {
        default: 5000,
        min: 100,
        max: 600_000,
        doc: "An idle keep-alive connection is closed after this many ms; behind a load balancer, set it above the balancer's idle timeout.",
      }),
    },
    corsOrigins: origins("CORS_ORIGINS", {
      shownDefault: "empty",
      doc: "Comma-separated browser origins allowed to call the API (e.g. `https://app.example.com`). Empty: same-origin only.",
    }),
    introspection: flag("GRAPHQL_INTROSPECTION", {
      shownDefault: "`true` in development, `false` in production",
      doc: "Answer `__schema` / `__type`.",
    }),
    limits: {
      depth: int("GRAPHQL_MAX_DEPTH", {
        default: DEFAULT_QUERY_LIMITS.depth,
        min: 1,
        max: 1000,
        doc: "Query depth limit, checked before anything runs (see Security).",
      }),
      aliases: int("GRAPHQL_MAX_ALIASES", { default: DEFAULT_QUERY_LIMITS.aliases, min: 0, max: 10_000, doc: "Aliases one query may use." }),
      tokens: int("GRAPHQL_MAX_TOKENS", {
        default: DEFAULT_QUERY_LIMITS.tokens,
        min: 10,
        max: 1_000_000,
        doc: "Tokens one query document may have.",
      }),
      directives: int("GRAPHQL_MAX_DIRECTIVES", {
        default: DEFAULT_QUERY_LIMITS.directives,
        min: 0,
        max: 10_000,
        doc: "Directives one query may use.",
      }),
      cost: int("GRAPHQL_MAX_COST", {
        default: DEFAULT_QUERY_LIMITS.cost,
        min: 1,
        max: 100_000_000,
        doc: "Query cost limit; nested page sizes multiply (see Security).",
      }),
    },
  },
  realtime: {
    subscriptionsPerUser: int("SUBSCRIPTIONS_PER_USER", {
      default: 50,
      min: 1,
      max: 10_000,
      doc:
        "Open subscriptions one user may have on one instance, all kinds together " +
        "(`messageAdded`, `taskChanged`, `conversationChanged`, `messageStream`, `turnUpdated`); one more answers `RATE_LIMITED`.",
    }),
    transport: oneOf("REALTIME_TRANSPORT", ["postgres", "nats"], {
      default: "postgres",
      doc:
        "How committed changes wake up subscribers: `postgres` (LISTEN/NOTIFY) or `nats` (an outbox relayed to NATS JetStream); " +
        "see [Realtime transports](#realtime-transports). Every instance must use the same one.",
    }),
    natsServers: natsServers("NATS_URL", {
      default: "nats://127.0.0.1:4222",
      doc: "`nats` only: the NATS server (2.x with JetStream), or several separated by commas.",
    }),
    natsSubjectPrefix: matching("NATS_SUBJECT_PREFIX", {
      default: "todo.realtime",
      rule: "dot-separated tokens of letters, digits, _ and - (at most 100 characters)",
      test: (value) => prefixProblem(value) === undefined,
      doc: "`nats` only: the prefix of every subject (`<prefix>.u.<channel>`, `<prefix>.tick`, `<prefix>.resync`); the stream is `<PREFIX>_WAKEUPS`.",
    }),
  },
  ws: {
    connectionsPerUser: int("WS_CONNECTIONS_PER_USER", {
      default: DEFAULT_WS_SETTINGS.connectionsPerUser,
      min: 1,
      max: 1_000_000,
      doc: "graphql-ws sockets one user may have open on one instance; one more is closed with 1008 (see [WebSocket limits](#websocket-limits)).",
    }),
    maxConnections: int("WS_MAX_CONNECTIONS", {
      default: undefined,
      min: 1,
      max: 10_000_000,
      shownDefault: "¾ of `ulimit -n`, at most `15000`",
      doc: "graphql-ws sockets in the process, authenticated or not; past it upgrades get 503.",
    }),
    unauthenticatedPerAddress: int("WS_UNAUTHENTICATED_PER_ADDRESS", {
      default: DEFAULT_WS_SETTINGS.unauthenticatedPerAddress,
      min: 1,
      max: 1_000_000,
      doc: "Sockets from one remote address that have not authenticated yet; past it upgrades get 429.",
    }),
    operationsPerSocket: int("WS_OPERATIONS_PER_SOCKET", {
      default: DEFAULT_WS_SETTINGS.operationsPerSocket,
      min: 1,
      max: 10_000,
      doc: "Queries and mutations executing at once on one socket; one more answers `RATE_LIMITED`.",
    }),
    maxBufferedBytes: int("WS_MAX_BUFFERED_BYTES", {
      default: DEFAULT_WS_SETTINGS.maxBufferedBytes,
      min: 64 * 1024,
      max: 1024 * 1024 * 1024,
      doc: "Output a socket may leave unread, in bytes; past it the socket is closed with 4413.",
    }),
    keepAliveMs: int("WS_KEEP_ALIVE_MS", {
      default: DEFAULT_WS_SETTINGS.keepAliveMs,
      min: 100,
      max: 3_600_000,
      doc: "A ping to every graphql-ws socket this often, in ms; one that has not answered by the next ping is cut.",
    }),
  },
  chat: {
    rateLimitPerMinute: int("CHAT_RATE_LIMIT", {
      default: 20,
      min: 0,
      max: 100_000,
      doc: "`sendMessage` calls a minute per user, across all instances; `0` turns the limit off.",
    }),
    // A burst of 0 would refuse every message: turning the limit off is CHAT_RATE_LIMIT=0.
    rateBurst: int("CHAT_RATE_BURST", { default: 5, min: 1, max: 10_000, doc: "How many sends a user may make at once before that rate applies." }),
    maxToolCallsPerStep: int("CHAT_MAX_TOOL_CALLS_PER_STEP", {
      default: 16,
      min: 1,
      max: 1000,
      doc: "Tool calls one model call may ask for; past it none of them run and the turn ends with `ASSISTANT_TOO_MANY_TOOL_CALLS`.",
    }),
    maxAnswerChars: int("CHAT_MAX_ANSWER_CHARS", {
      default: 20_000,
      min: 100,
      max: 1_000_000,
      doc: "The longest answer kept, in characters; a longer one is cut there with a marker and the turn ends with `ASSISTANT_ANSWER_TOO_LONG`.",
    }),
    streamFlushMs: int("STREAM_FLUSH_MS", {
      default: 100,
      min: 10,
      max: 10_000,
      doc: "A streamed answer is written to its row at most this often, in ms.",
    }),
    approval: oneOf("CHAT_APPROVAL", APPROVAL_POLICIES, {
      default: "destructive",
      doc: "Which assistant tool calls wait for the user's approval (see [Approvals](#approvals)): `destructive` (`delete_task`, and any call that would change more than one task), `all` (every write tool) or `none`. Read tools never wait.",
    }),
    approvalTtlSeconds: duration("CHAT_APPROVAL_TTL", {
      bounds: { minSeconds: 1, maxSeconds: 7 * 86_400 },
      shownDefault: "`15m`",
      doc: "How long a held call waits for a decision; then the turn ends with `APPROVAL_EXPIRED` and nothing held runs.",
    }),
  },
  auth: {
    jwtSecret: secret("AUTH_JWT_SECRET", {
      // HS256 with fewer than 256 bits of key is brute-forceable (RFC 7518 §3.2).
      minBytes: 32,
      doc: "HS256 secret, e.g. Better Auth's JWT secret.",
    }),
    jwksUrl: url("AUTH_JWKS_URL", { protocols: WEB, doc: "JWKS endpoint (RS/PS/ES/EdDSA); set this or the secret, not both." }),
    issuer: text("AUTH_JWT_ISSUER", { default: undefined, doc: "The issuer (`iss`) tokens must carry, when set." }),
    audience: text("AUTH_JWT_AUDIENCE", { default: undefined, doc: "The audience (`aud`) tokens must carry, when set." }),
    maxTokenAgeSeconds: duration("AUTH_MAX_TOKEN_AGE", {
      bounds: { minSeconds: 1, maxSeconds: 365 * 86_400 },
      shownDefault: "unset",
      doc: "Caps how long a WebSocket or SSE subscription lives from when it opens, whatever the token says; `exp` is always enforced.",
    }),
  },
  cohere: {
    apiKey: secret("COHERE_API_KEY", {
      doc: 'Cohere key, from the environment only. Unset: `sendMessage` answers `ASSISTANT_UNAVAILABLE` ("COHERE_API_KEY is not set"); the rest of the API works.',
    }),
    model: text("COHERE_MODEL", { default: "command-a-03-2025", doc: "Chat model." }),
    baseUrl: url("COHERE_BASE_URL", { protocols: WEB, shownDefault: "Cohere's API", doc: "Another base URL: a proxy, or a fake in tests." }),
    maxSteps: int("COHERE_MAX_STEPS", { default: 8, min: 1, max: 50, doc: "Model calls per chat turn." }),
    timeoutMs: int("COHERE_TIMEOUT_MS", { default: 30_000, min: 1, max: 600_000, doc: "Timeout of one model call, in ms." }),
    turnTimeoutMs: int("COHERE_TURN_TIMEOUT_MS", { default: 120_000, min: 1, max: 3_600_000, doc: "Timeout of a whole chat turn, in ms." }),
    maxInputTokens: int("COHERE_MAX_INPUT_TOKENS", {
      default: 100_000,
      min: 1000,
      max: 10_000_000,
      doc: "The estimated budget of the history window sent to the model (preamble, tools, newest messages).",
    }),
  },
  metrics: {
    port: int("METRICS_PORT", {
      default: undefined,
      min: 1,
      max: 65_535,
      rule: "a port number (1–65535)",
      shownDefault: "unset: no metrics",
      doc: "Serve Prometheus metrics at `/metrics` on a listener of its own on this port, never on `PORT` (see [Metrics](#metrics)). A port in use is logged and the API serves without it.",
    }),
    host: host("METRICS_HOST", {
      shownDefault: "`127.0.0.1`",
      doc: "The address the metrics listener binds; set `0.0.0.0` only where the network keeps `/metrics` private.",
    }),
  },
  tracing: {
    endpoint: url("OTEL_EXPORTER_OTLP_ENDPOINT", {
      protocols: WEB,
      shownDefault: "unset: no traces",
      doc: "OpenTelemetry collector's OTLP/HTTP base URL; spans go to `<endpoint>/v1/traces` (see [Traces](#traces)). `OTEL_EXPORTER_OTLP_HEADERS` is read as the exporter reads it.",
    }),
    protocol: oneOf("OTEL_EXPORTER_OTLP_PROTOCOL", ["http/protobuf", "http/json"], {
      default: "http/protobuf",
      doc: "How spans are encoded: `http/protobuf` or `http/json`.",
    }),
    serviceName: text("OTEL_SERVICE_NAME", { default: "todo-assistant-api", doc: "The traces' `service.name`." }),
  },
  operations: {
    allowArbitrary: flag("ALLOW_ARBITRARY_OPERATIONS", {
      shownDefault: "`true` (development and production)",
      doc: "Whether documents other than the trusted ones (the web client's, and `TRUSTED_DOCUMENTS_FILE`'s) may run. `false` answers them `PERSISTED_QUERY_REQUIRED`: set it in a production whose clients all send trusted documents; GraphiQL and ad-hoc clients need `true` (see [Trusted documents](#trusted-documents)).",
    }),
    trustedDocumentsFile: text("TRUSTED_DOCUMENTS_FILE", {
      default: undefined,
      shownDefault: "unset: the web client's only",
      doc: 'A JSON file of more trusted documents, `{ "<sha256 hex of the text>": "<document text>" }`, checked against the schema at start.',
    }),
  },
  mcp: {
    authToken: secret("MCP_AUTH_TOKEN", { doc: "`npm run mcp` only: the JWT of the user the stdio MCP server acts for." }),
  },
};

type Values = ValuesOf<typeof SETTINGS>;

/** The server's configuration: the settings' values, with the defaults that depend on other settings worked out. */
export type Config = ReturnType<typeof resolve>;

/** WEB_UI unset: on in development, off in production. */
function webUiOn(webUi: boolean | undefined, isProduction: boolean): boolean {
  return webUi ?? !isProduction;
}

function resolve(v: Values) {
  const isProduction = v.nodeEnv === "production";
  return {
    ...v,
    isProduction,
    // Loopback by default outside production, so a development server is not
    // reachable from the network unless HOST says so.
    host: v.host ?? (isProduction ? "0.0.0.0" : "127.0.0.1"),
    webUi: webUiOn(v.webUi, isProduction),
    chat: { ...v.chat, approvalTtlSeconds: v.chat.approvalTtlSeconds ?? APPROVAL_TTL_SECONDS },
    database: database(v.database),
    http: http(v.http, isProduction),
    realtime: realtime(v.realtime),
    ws: v.ws satisfies WsSettings,
    metrics: v.metrics.port === undefined ? undefined : { port: v.metrics.port, host: v.metrics.host ?? "127.0.0.1" },
    operations: { ...v.operations, allowArbitrary: v.operations.allowArbitrary ?? true },
  };
}

function database(d: Values["database"]): DatabaseSettings {
  const neonHost = d.url !== undefined && new URL(d.url).hostname.endsWith(".neon.tech");
  return { ...d, directUrl: d.directUrl ?? d.url, driver: d.driver ?? (neonHost ? "neon" : "pg") };
}

function realtime(r: Values["realtime"]): { subscriptionsPerUser: number; transport: TransportSettings } {
  const transport: TransportSettings =
    r.transport === "nats" ? { kind: "nats", servers: r.natsServers, subjectPrefix: r.natsSubjectPrefix } : { kind: "postgres" };
  return { subscriptionsPerUser: r.subscriptionsPerUser, transport };
}

function http(h: Values["http"], isProduction: boolean): HttpSettings {
  return {
    ...h,
    introspection: h.introspection ?? !isProduction,
    suggestions: !isProduction,
    timeouts: { ...h.timeouts, requestMs: h.timeouts.requestMs ?? defaultRequestTimeoutMs(h.maxBodyBytes) },
  };
}

/** Rules between settings, once each is valid on its own. */
function conflicts(c: Config): string[] {
  const { auth, database, http } = c;
  const problems: string[] = [];
  if (auth.jwtSecret !== undefined && auth.jwksUrl !== undefined) problems.push("Set AUTH_JWT_SECRET or AUTH_JWKS_URL, not both");
  if (c.isProduction && auth.jwtSecret === undefined && auth.jwksUrl === undefined) {
    problems.push("In production, AUTH_JWT_SECRET or AUTH_JWKS_URL must be set");
  }
  if (database.directUrl !== undefined && database.url === undefined) problems.push("DIRECT_URL is set but DATABASE_URL is not");
  // /metrics is never on the public port.
  if (c.metrics !== undefined && c.metrics.port === c.port) problems.push(`METRICS_PORT must differ from PORT (${c.port})`);
  // Node refuses a headers timeout longer than the request's; say so in the settings' own names.
  const { headersMs, requestMs } = http.timeouts;
  if (headersMs > requestMs) problems.push(`HEADERS_TIMEOUT_MS (${headersMs}) must not exceed REQUEST_TIMEOUT_MS (${requestMs})`);
  return problems;
}

/** Parses and validates the environment once; throws ConfigError listing every problem, one a line. */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  const problems: string[] = [];
  const values = readSettings(SETTINGS, env, problems);
  if (problems.length > 0) throw new ConfigError(problems.join("\n"));
  const config = resolve(values);
  const conflicting = conflicts(config);
  if (conflicting.length > 0) throw new ConfigError(conflicting.join("\n"));
  return config;
}

/**
 * Whether the server will serve the web client, read as loadConfig reads it
 * but from WEB_UI and NODE_ENV alone: the install-time build must not stop on
 * other settings. An invalid WEB_UI: no (the server refuses to start on it anyway).
 */
export function webUiWanted(env: NodeJS.ProcessEnv = process.env): boolean {
  const webUi = SETTINGS.webUi.read(env);
  const nodeEnv = SETTINGS.nodeEnv.read(env);
  if (!webUi.ok) return false;
  return webUiOn(webUi.value, nodeEnv.ok && nodeEnv.value === "production");
}
