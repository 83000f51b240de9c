import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { GraphQLError } from "graphql";
import { createYoga, useReadinessCheck, type GraphiQLOptions, type YogaServerInstance } from "graphql-yoga";
import { bearerToken, type TokenVerifier, type Viewer } from "../auth/verifier.js";
import { DEFAULT_WS_SETTINGS, type HttpSettings, type WsSettings } from "./settings.js";
import type { Db } from "../db/client.js";
import { AppError, toGraphQLError } from "../lib/errors.js";
import type { Logger } from "../lib/logger.js";
import { createMaskError, useValidationErrorCode } from "./mask-error.js";
import { Assistant } from "../chat/assistant.js";
import type { AssistantDeps } from "../chat/turn-run.js";
import { sweepInterruptedTurns } from "../domain/conversation-log.js";
import { useConnectionArgsGuard } from "../schema/connection-args.js";
import { useDeferredErrors } from "../schema/deferred-errors.js";
import { createTaskLoader, createToolApprovalLoader, createToolResultLoader } from "../schema/loaders.js";
import type { Context } from "../schema/context.js";
import { schema } from "../schema/index.js";
import { RealtimeHub, type RealtimeOptions } from "../realtime/hub.js";
import { PgListener, type ListenerOptions } from "../realtime/listener.js";
import { useSharedSubscriptionExecution } from "./shared-execution.js";
import { StreamFeed } from "../realtime/stream-feed.js";
import { TurnFeed } from "../realtime/turn-feed.js";
import { attachGraphQLWs, type GraphQLWs } from "./ws/attach.js";
import { currentRequestId, requestIdFrom } from "../lib/request-context.js";
import { createMcpHandler, MCP_PATH } from "../mcp/http.js";
import { GRAPHIQL_ASSETS_PATH, graphiqlAsset, graphiqlOptions, renderLocalGraphiQL } from "./graphiql.js";
import { useAccessLog } from "./access-log.js";
import { useAuthFirst, type FrontDoorContext } from "./auth-first.js";
import { corsPolicy } from "./cors.js";
import { Drain, useDrainableSubscriptions } from "./drain.js";
import { createFrontDoor, type RequestServerContext } from "./front-door.js";
import { isSameOriginLoopback } from "./local-request.js";
import { useRoutes, type Route } from "./routes.js";
import { useSecurityHeaders } from "./security-headers.js";
import { useStrictRequestParsing } from "./strict-body.js";
import { serverTimeouts } from "./timeouts.js";
import { useUnskippableSubscriptionRoot } from "./unskippable-subscription-root.js";
import { useNoIntrospection, useQueryLimits } from "./limits/query-limits.js";
import { webUiRoutes } from "./web-ui/serve.js";

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
  /** The unpooled URL the LISTEN connection uses (DIRECT_URL). */
  listenUrl: string;
  listener?: Omit<ListenerOptions, "connectionString" | "logger">;
  /** Subscription caps (SUBSCRIPTIONS_PER_USER) and buffers. */
  realtime?: RealtimeOptions;
  /** graphql-ws bounds (WS_*); each unset one has its default. */
  ws?: Partial<WsSettings>;
}

export interface App {
  yoga: YogaServerInstance<Record<string, unknown>, Context>;
  server: Server;
  listener: PgListener;
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
  /** Listens on the port (0 picks a free one) and resolves with the bound address. */
  start(port: number, host?: string): Promise<{ port: number; url: string }>;
  /**
   * Drains, then closes: /ready turns 503 and new requests and sockets are refused at once;
   * subscriptions end (WebSockets close with 1001, SSE streams complete); accepted requests
   * get up to the grace period to finish; then the server and the LISTEN connection close.
   * Resolves with whether everything finished within the grace period.
   */
  stop(): Promise<boolean>;
}

/** After the grace period, how long the answers of requests whose turns were just interrupted may take to go out. */
const ANSWERS_AFTER_STOP_MS = 2000;

export function buildApp(deps: AppDeps): App {
  const { db, logger, verifier } = deps;
  const listener = new PgListener({ ...deps.listener, connectionString: deps.listenUrl, logger });
  const realtime = new RealtimeHub(db, listener, logger, deps.realtime);
  // One admission for every kind of subscription: messageStream counts against the same cap.
  const streams = new StreamFeed(db, listener, logger, realtime.admission);
  const turns = new TurnFeed(db, listener, logger, realtime.admission);
  listener.on("reconnected", () => {
    streams.catchUp();
    turns.catchUp();
  });
  const assistant = new Assistant(db, deps.assistant, listener);
  const drain = new Drain();
  const maskError = createMaskError(logger, { suggestions: deps.http.suggestions });
  const yoga = createYoga<Record<string, unknown>, Context>({
    schema,
    graphqlEndpoint: "/graphql",
    healthCheckEndpoint: "/health",
    landingPage: false,
    logging: false,
    multipart: false,
    // Bodies are read (and limited) by useStrictRequestParsing.
    maxRequestBodySize: false,
    cors: corsPolicy(deps.http.corsOrigins),
    graphiql: graphiqlFor(deps.graphiql),
    renderGraphiQL: renderLocalGraphiQL,
    maskedErrors: { maskError },
    context: async (initial): Promise<Context> => {
      const requestId = currentRequestId() ?? requestIdFrom(initial.request?.headers.get("x-request-id"));
      // The front door (HTTP) or graphql-ws (WebSocket) has verified the token already.
      const viewer = (initial as FrontDoorContext).viewer ?? (await verifyFallback(verifier, initial.request));
      return {
        viewer,
        db,
        requestId,
        assistant,
        realtime,
        streams,
        turns,
        toolResults: createToolResultLoader(db, viewer.userId),
        toolApprovals: createToolApprovalLoader(db, viewer.userId),
        tasks: createTaskLoader(db, viewer.userId),
        deferredErrors: [],
      };
    },
    plugins: [
      useAccessLog(logger),
      useSecurityHeaders(),
      useRoutes(routes(deps), logger),
      useReadinessCheck({ endpoint: "/ready", check: () => databaseReady(db, logger, deps.readyTimeoutMs ?? 2000) }),
      useAuthFirst({ graphqlEndpoint: "/graphql", verifier, maxBodyBytes: deps.http.maxBodyBytes }),
      useStrictRequestParsing(deps.http.maxBodyBytes),
      ...useQueryLimits(deps.http.limits),
      ...(deps.http.introspection ? [] : [useNoIntrospection()]),
      useUnskippableSubscriptionRoot(),
      useValidationErrorCode({ suggestions: deps.http.suggestions }),
      useConnectionArgsGuard(),
      useDeferredErrors(),
      useSharedSubscriptionExecution(),
      useDrainableSubscriptions(drain.signal),
    ],
  });

  const server = createServer(serverTimeouts(deps.http.timeouts), createFrontDoor(yoga, logger, drain));
  const ws = attachGraphQLWs({
    server,
    yoga,
    verifier,
    logger,
    maskError,
    maxPayload: deps.http.maxBodyBytes,
    allowedOrigins: deps.http.corsOrigins,
    accepting: () => !drain.draining,
    settings: { ...DEFAULT_WS_SETTINGS, ...deps.ws },
  });

  let stopping: Promise<boolean> | undefined;
  const stopAll = async (): Promise<boolean> => {
    const graceEnds = Date.now() + (deps.shutdownGraceMs ?? 25_000);
    drain.begin();
    await ws.close();
    // Accepted requests, then the turns running in the background, get the rest of the grace period.
    const requestsDone = await drain.settled(graceEnds - Date.now());
    const turnsDone = await assistant.finished(Math.max(0, graceEnds - Date.now()));
    const finished = requestsDone && turnsDone;
    if (!finished) {
      logger.warn({ inFlight: drain.inFlight, turns: assistant.runningCount }, "shutdown grace period over; interrupting what is left");
    }
    // Turns still running are ended as interrupted and their leases handed back, so a retry resumes them at once.
    await assistant.stop();
    // The requests that waited for those turns now have their answer ("interrupted, retry"): let it
    // reach their clients before the connections close, or they would see a reset instead.
    if (!finished) await drain.settled(ANSWERS_AFTER_STOP_MS);
    await new Promise<void>((resolve, reject) => {
      if (!server.listening) return resolve();
      server.close((error) => (error ? reject(error) : resolve()));
      server.closeAllConnections();
    });
    await listener.close();
    return finished;
  };

  return {
    yoga,
    server,
    listener,
    realtime,
    streams,
    turns,
    assistant,
    requestsInFlight: () => drain.inFlight,
    ws,
    start: async (port, host = "127.0.0.1") => {
      // Subscriptions open even while the listener is still (re)connecting: they stay open and catch up.
      listener.start().catch((error: unknown) => logger.warn({ err: error }, "listener not connected yet; retrying"));
      // Turns that dead instances left RUNNING (their leases expired) are marked interrupted; requests find any it misses.
      void sweepInterruptedTurns(db).then(
        (count) => count > 0 && logger.info({ count }, "marked turns of stopped instances interrupted"),
        (error: unknown) => logger.warn({ err: error }, "could not sweep interrupted turns; requests still find them"),
      );
      // Turns whose approval expired while no instance was up end now, and each later one when it falls due.
      assistant.startSweeps();
      return new Promise((resolve, reject) => {
        server.once("error", reject);
        server.listen(port, host, () => {
          server.off("error", reject);
          // Later errors (a socket that misbehaves) are logged, never an unhandled 'error' event.
          server.on("error", (error) => logger.error({ err: error }, "HTTP server error"));
          const address = server.address() as AddressInfo;
          const shownHost = host === "0.0.0.0" || host === "::" ? "localhost" : host;
          resolve({ port: address.port, url: `http://${shownHost}:${address.port}/graphql` });
        });
      });
    },
    // Idempotent: a second stop() waits for the first instead of failing.
    stop: () => (stopping ??= stopAll()),
  };
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

/** The dev token goes only into pages served to this machine's own same-origin requests. */
function graphiqlFor(graphiql: AppDeps["graphiql"]) {
  if (!graphiql) return false;
  return (request: Request, serverContext: Record<string, unknown> | undefined): GraphiQLOptions => {
    const trusted = isSameOriginLoopback(request, (serverContext as Partial<RequestServerContext> | undefined)?.req);
    return graphiqlOptions(trusted ? graphiql.devHeaders : undefined);
  };
}

async function verifyFallback(verifier: TokenVerifier, request: Request | undefined): Promise<Viewer> {
  try {
    return await verifier.verify(bearerToken(request?.headers.get("authorization")));
  } catch (error) {
    // 401 tells HTTP clients and proxies what happened; yoga strips `http` from the body.
    if (error instanceof AppError) throw toGraphQLError(error, undefined, { http: { status: 401 } });
    throw error;
  }
}

async function databaseReady(db: Db, logger: Logger, timeoutMs: number): Promise<boolean> {
  try {
    await withTimeout(db.$queryRaw`SELECT 1`, timeoutMs);
    return true;
  } catch (error) {
    // Yoga would answer with the error's message, which names the database host,
    // port and Prisma internals: a bare 503 for the client, the reason for the log.
    logger.warn({ err: error }, "readiness check failed");
    return false;
  }
}

function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new GraphQLError(`timed out after ${ms} ms`)), ms);
    promise.then(
      (value) => {
        clearTimeout(timer);
        resolve(value);
      },
      (error: unknown) => {
        clearTimeout(timer);
        reject(error instanceof Error ? error : new Error(String(error)));
      },
    );
  });
}
