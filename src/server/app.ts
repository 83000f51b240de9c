import { createServer, type Server } from "node:http";
import type { YogaServerInstance } from "graphql-yoga";
import type { TokenVerifier } from "../auth/verifier.js";
import { DEFAULT_WS_SETTINGS, type HttpSettings, type WsSettings } from "./settings.js";
import { poolStats, type Db } from "../db/client.js";
import type { Logger } from "../lib/logger.js";
import { createMaskError } from "./mask-error.js";
import { Assistant } from "../chat/assistant.js";
import type { AssistantDeps } from "../chat/turn-run.js";
import type { Context } from "../schema/context.js";
import { RealtimeHub, type RealtimeOptions } from "../realtime/hub.js";
import { createTransport, type TransportOptions } from "../realtime/create-transport.js";
import type { RealtimeTransport, TransportSettings } from "../realtime/transport.js";
import { StreamFeed } from "../realtime/stream-feed.js";
import { TurnFeed } from "../realtime/turn-feed.js";
import { attachGraphQLWs, type GraphQLWs } from "./ws/attach.js";
import { createMcpHandler, MCP_PATH } from "../mcp/http.js";
import { GRAPHIQL_ASSETS_PATH, graphiqlAsset } from "./graphiql.js";
import { Drain } from "./drain.js";
import { createFrontDoor, type RequestServerContext } from "./front-door.js";
import { contextFactory } from "./graphql-context.js";
import { startApp, stopApp, type StartedApp } from "./lifecycle.js";
import { isSameOriginLoopback } from "./local-request.js";
import { ready } from "./readiness.js";
import type { Route } from "./routes.js";
import { serverTimeouts } from "./timeouts.js";
import { webUiRoutes } from "./web-ui/serve.js";
import { createYogaServer } from "./yoga.js";
import { schema } from "../schema/index.js";
import { WEB_DOCUMENTS } from "./trusted-manifest.js";
import { TrustedDocuments } from "./trusted-documents.js";
import type { PersistedOperationsOptions } from "./persisted-operations.js";
import type { Tracing } from "../lib/tracing.js";
import type { AppMetrics, MetricSources } from "../telemetry/metrics.js";
import { chatTelemetry } from "../telemetry/chat.js";
import { MetricsListener, type MetricsSettings } from "./metrics-listener.js";

export interface AppDeps {
  db: Db;
  /** The chat loop's model (undefined without COHERE_API_KEY), bounds and clock. */
  assistant: AssistantDeps;
  logger: Logger;
  verifier: TokenVerifier;
  /** Body limit, CORS, introspection, suggestions and query limits. */
  http: HttpSettings;
  /**
   * GraphiQL at GET /graphql; off in production. `devHeaders` (the dev token) are put
   * in the page only for same-origin requests from this machine.
   */
  graphiql: false | { devHeaders?: Record<string, string> };
  /**
   * The web client at `/` (WEB_UI), from its built files; off in production by default.
   * `devToken` goes into its page under the same rule as GraphiQL's headers.
   */
  webUi?: false | { distDir: string; devToken?: string | undefined };
  /** Milliseconds /ready waits for the database. */
  readyTimeoutMs?: number;
  /** How long stop() lets accepted requests finish (SHUTDOWN_GRACE_MS, default 25 s). */
  shutdownGraceMs?: number;
  /** The unpooled URL the LISTEN connection and the nats relay's session use (DIRECT_URL). */
  listenUrl: string;
  /** REALTIME_TRANSPORT and its settings; postgres when unset. */
  transport?: TransportSettings;
  /** The transport's heartbeat, reconnect backoff and (nats) relay timings. */
  listener?: Omit<TransportOptions, "connectionString" | "logger" | "settings" | "db">;
  /** Subscription caps (SUBSCRIPTIONS_PER_USER) and buffers. */
  realtime?: RealtimeOptions;
  /** graphql-ws bounds (WS_*); each unset one has its default. */
  ws?: Partial<WsSettings>;
  /**
   * Prometheus metrics (METRICS_PORT): where their listener binds, and the factory of the
   * instance's registry (src/telemetry/metrics.ts, loaded only when metrics are on). Unset: none.
   */
  metrics?: MetricsSettings & { create: (sources: MetricSources) => AppMetrics };
  /** Spans (OTEL_EXPORTER_OTLP_ENDPOINT): the GraphQL operation, the chat turn and its calls. Unset: none. */
  tracing?: Tracing;
  /**
   * Trusted documents: the web client's always; `manifests` add more ({ sha256: text }, TRUSTED_DOCUMENTS_FILE).
   * `allowArbitrary` (ALLOW_ARBITRARY_OPERATIONS, default true) lets other documents run too.
   */
  operations?: { allowArbitrary: boolean; manifests?: Readonly<Record<string, string>>[] };
}

export interface App {
  yoga: YogaServerInstance<Record<string, unknown>, Context>;
  server: Server;
  /** How wake-ups reach this instance (REALTIME_TRANSPORT): LISTEN/NOTIFY or NATS. */
  transport: RealtimeTransport;
  realtime: RealtimeHub;
  /** messageStream's source. */
  streams: StreamFeed;
  /** turnUpdated's source. */
  turns: TurnFeed;
  /** This instance's chat turns. */
  assistant: Assistant;
  /** HTTP requests accepted and not yet answered or abandoned: what stop() waits for. */
  requestsInFlight(): number;
  /** The graphql-ws transport's counts (sockets, buffered output, operations in flight). */
  ws: Pick<GraphQLWs, "stats" | "connectionsOf">;
  /** This instance's metrics, when METRICS_PORT is set. */
  metrics: AppMetrics | undefined;
  /**
   * Listens on the port (0 picks a free one) and resolves with the bound address; with metrics, their
   * listener's port too (undefined when it could not bind: logged, and the API serves on).
   */
  start(port: number, host?: string): Promise<StartedApp>;
  /**
   * Drains, then closes: /ready turns 503 and new requests and sockets are refused at once;
   * subscriptions end (WebSockets close with 1001, SSE streams complete); accepted requests
   * get up to the grace period to finish; then the server and the realtime transport close.
   * Resolves with whether everything finished within the grace period.
   */
  stop(): Promise<boolean>;
}

/**
 * One app instance: the GraphQL server (every route through one pipeline of plugins, yoga.ts),
 * graphql-ws on the same HTTP server, and start/stop (lifecycle.ts); stop drains before it closes.
 */
export function buildApp(deps: AppDeps): App {
  const { db, logger, verifier } = deps;
  const late: { realtime?: RealtimeHub; ws?: GraphQLWs } = {};
  const metrics = deps.metrics?.create({
    subscribers: () => late.realtime?.admission.openByKind() ?? new Map(),
    webSockets: () => late.ws?.stats().connections ?? 0,
    pool: () => poolStats(db),
  });
  const { transport, realtime, streams, turns } = realtimeFor(deps, metrics);
  const assistant = new Assistant(db, assistantDeps(deps, metrics), transport);
  const drain = new Drain();
  const maskError = createMaskError(logger, { suggestions: deps.http.suggestions });
  const trusted = trustedOperations(deps.operations);
  const yoga = createYogaServer({
    http: deps.http,
    logger,
    verifier,
    maskError,
    drain,
    trusted,
    routes: routes(deps),
    graphiql: deps.graphiql,
    ready: () => ready(db, transport, logger, deps.readyTimeoutMs ?? 2000),
    context: contextFactory({ db, verifier, assistant, realtime, streams, turns }),
    telemetry: { metrics: metrics?.graphql, tracing: deps.tracing },
  });
  const server = createServer(serverTimeouts(deps.http.timeouts), createFrontDoor(yoga, logger, drain));
  const ws = attachGraphQLWs({
    server,
    yoga,
    verifier,
    logger,
    maskError,
    maxPayload: deps.http.maxBodyBytes,
    trusted,
    allowedOrigins: deps.http.corsOrigins,
    accepting: () => !drain.draining,
    settings: { ...DEFAULT_WS_SETTINGS, ...deps.ws },
  });
  Object.assign(late, { realtime, ws });
  const metricsListener = metrics && deps.metrics && new MetricsListener(metrics, deps.metrics, logger);
  const parts = { db, logger, server, transport, drain, ws, assistant, graceMs: deps.shutdownGraceMs ?? 25_000, metrics: metricsListener };
  let stopping: Promise<boolean> | undefined;
  return {
    yoga,
    server,
    transport,
    realtime,
    streams,
    turns,
    assistant,
    requestsInFlight: () => drain.inFlight,
    ws,
    metrics,
    start: (port, host) => startApp(parts, port, host),
    // Idempotent: a second stop() waits for the first instead of failing.
    stop: () => (stopping ??= stopApp(parts)),
  };
}

/** The web client's documents and the deployment's own, each checked against the schema here; arbitrary ones allowed unless turned off. */
function trustedOperations(operations: AppDeps["operations"]): PersistedOperationsOptions {
  return {
    documents: new TrustedDocuments(schema, [WEB_DOCUMENTS, ...(operations?.manifests ?? [])]),
    allowArbitrary: operations?.allowArbitrary ?? true,
  };
}

/** The chat settings, with the turn loop's metrics and spans when either is on. */
function assistantDeps(deps: AppDeps, metrics: AppMetrics | undefined): AssistantDeps {
  if (!metrics && !deps.tracing) return deps.assistant;
  return { ...deps.assistant, telemetry: chatTelemetry(metrics?.chat, deps.tracing) };
}

/** The realtime transport (REALTIME_TRANSPORT) and what reads from it: the hub (messageAdded, taskChanged), messageStream's and turnUpdated's feeds. */
function realtimeFor(deps: AppDeps, metrics: AppMetrics | undefined) {
  const settings = deps.transport ?? { kind: "postgres" };
  const transport = createTransport({ ...deps.listener, settings, connectionString: deps.listenUrl, logger: deps.logger, db: deps.db });
  const realtime = new RealtimeHub(deps.db, transport, deps.logger, deps.realtime, metrics?.realtime);
  // One admission for every kind of subscription: messageStream counts against the same cap.
  const streams = new StreamFeed(deps.db, transport, deps.logger, realtime.admission);
  const turns = new TurnFeed(deps.db, transport, deps.logger, realtime.admission);
  transport.on("reconnected", (info) => {
    streams.catchUp();
    turns.catchUp();
    // A first connection reports `since` as the epoch: only a comeback counts as a reconnect.
    if (info.since.getTime() > 0) metrics?.realtime.reconnected();
  });
  return { transport, realtime, streams, turns };
}

function routes(deps: AppDeps): Route[] {
  const mcp = createMcpHandler({ db: deps.db, verifier: deps.verifier, logger: deps.logger, maxBodyBytes: deps.http.maxBodyBytes });
  const list: Route[] = [{ path: MCP_PATH, handle: (request) => mcp(request) }];
  if (deps.graphiql) {
    list.push({ path: GRAPHIQL_ASSETS_PATH, handle: (request) => graphiqlAsset(request, new URL(request.url).pathname) });
  }
  if (deps.webUi) {
    const trusted = (request: Request, serverContext: Record<string, unknown>) =>
      isSameOriginLoopback(request, (serverContext as Partial<RequestServerContext>).req);
    list.push(...webUiRoutes({ distDir: deps.webUi.distDir, devToken: deps.webUi.devToken, trusted }));
  }
  return list;
}
