import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { GraphQLError } from "graphql";
import { createYoga, useReadinessCheck, type YogaServerInstance } from "graphql-yoga";
import { bearerToken, type TokenVerifier, type Viewer } from "./auth.js";
import type { Db } from "./db/client.js";
import { AppError, toGraphQLError } from "./errors.js";
import type { Logger } from "./logger.js";
import { createMaskError, useValidationErrorCode } from "./mask-error.js";
import type { AssistantDeps } from "./chat/turn.js";
import { useConnectionArgsGuard } from "./schema/connection-args.js";
import { useDeferredErrors } from "./schema/deferred-errors.js";
import { createToolResultLoader } from "./schema/loaders.js";
import type { Context } from "./schema/context.js";
import { schema } from "./schema/index.js";
import { RealtimeHub } from "./realtime/hub.js";
import { PgListener, type ListenerOptions } from "./realtime/listener.js";
import { attachGraphQLWs } from "./ws.js";
import { currentRequestId, requestContext, requestIdFrom } from "./request-context.js";
import { createMcpHandler, MCP_PATH } from "./mcp/http.js";
import { graphiqlOptions, renderLocalGraphiQL, serveGraphiQLAsset } from "./graphiql.js";

export interface AppDeps {
  db: Db;
  /** The chat loop's model (undefined without COHERE_API_KEY), bounds and clock. */
  assistant: AssistantDeps;
  logger: Logger;
  verifier: TokenVerifier;
  /** GraphiQL at GET /graphql; off in production. */
  graphiql: false | { defaultHeaders?: Record<string, string> };
  /** Milliseconds /ready waits for the database. */
  readyTimeoutMs?: number;
  /** The unpooled URL the LISTEN connection uses (DIRECT_URL). */
  listenUrl: string;
  listener?: Omit<ListenerOptions, "connectionString" | "logger">;
}

export interface App {
  yoga: YogaServerInstance<Record<string, unknown>, Context>;
  server: Server;
  listener: PgListener;
  realtime: RealtimeHub;
  /** Listens on the port (0 picks a free one) and resolves with the bound address. */
  start(port: number, host?: string): Promise<{ port: number; url: string }>;
  stop(): Promise<void>;
}


export function buildApp(deps: AppDeps): App {
  const { db, logger, verifier } = deps;
  const listener = new PgListener({ ...deps.listener, connectionString: deps.listenUrl, logger });
  const realtime = new RealtimeHub(db, listener, logger);

  const yoga = createYoga<Record<string, unknown>, Context>({
    schema,
    graphqlEndpoint: "/graphql",
    healthCheckEndpoint: "/health",
    landingPage: false,
    logging: false,
    graphiql: deps.graphiql ? graphiqlOptions(deps.graphiql.defaultHeaders) : false,
    renderGraphiQL: renderLocalGraphiQL,
    maskedErrors: { maskError: createMaskError(logger) },
    context: async (initial): Promise<Context> => {
      const { request } = initial;
      const requestId = currentRequestId() ?? requestIdFrom(request?.headers.get("x-request-id"));
      try {
        // graphql-ws authenticated the socket already and passes its viewer in.
        const viewer =
          (initial as { viewer?: Viewer }).viewer ??
          (await verifier.verify(bearerToken(request.headers.get("authorization"))));
        return {
          viewer,
          db,
          requestId,
          assistant: deps.assistant,
          realtime,
          toolResults: createToolResultLoader(db, viewer.userId),
          deferredErrors: [],
        };
      } catch (error) {
        // 401 tells HTTP clients and proxies what happened; yoga strips `http` from the body.
        if (error instanceof AppError) throw toGraphQLError(error, undefined, { http: { status: 401 } });
        throw error;
      }
    },
    plugins: [
      useValidationErrorCode(),
      useConnectionArgsGuard(),
      useDeferredErrors(),
      useReadinessCheck({
        endpoint: "/ready",
        check: async () => {
          try {
            await withTimeout(db.$queryRaw`SELECT 1`, deps.readyTimeoutMs ?? 2000);
            return true;
          } catch (error) {
            // Yoga would answer with the error's message, which names the database host,
            // port and Prisma internals: a bare 503 for the client, the reason for the log.
            logger.warn({ err: error }, "readiness check failed");
            return false;
          }
        },
      }),
      {
        onResponse({ request, response, serverContext }) {
          const started = (serverContext as { startedAt?: number }).startedAt;
          logger.info(
            {
              method: request.method,
              path: new URL(request.url).pathname,
              status: response.status,
              ms: started === undefined ? undefined : Date.now() - started,
            },
            "request",
          );
        },
      },
    ],
  });

  const mcp = createMcpHandler({ db, verifier, logger });
  const server = createServer((req, res) => {
    const requestId = requestIdFrom(req.headers["x-request-id"]);
    res.setHeader("x-request-id", requestId);
    requestContext.run({ requestId }, () => {
      if (deps.graphiql && serveGraphiQLAsset(req, res)) return;
      if (req.url === MCP_PATH || req.url?.startsWith(`${MCP_PATH}?`)) {
        void mcp(req, res);
        return;
      }
      void yoga.handle(req, res, { startedAt: Date.now() });
    });
  });
  const ws = attachGraphQLWs({ server, yoga, verifier, logger });

  let stopping: Promise<void> | undefined;
  const stopAll = async () => {
    await ws.close();
    await listener.close();
    await new Promise<void>((resolve, reject) => {
      if (!server.listening) return resolve();
      server.close((error) => (error ? reject(error) : resolve()));
      server.closeAllConnections();
    });
  };

  return {
    yoga,
    server,
    listener,
    realtime,
    start: async (port, host = "0.0.0.0") => {
      // Subscriptions open even while the listener is still (re)connecting: they stay open and catch up.
      listener.start().catch((error: unknown) => logger.warn({ err: error }, "listener not connected yet; retrying"));
      return new Promise((resolve, reject) => {
        server.once("error", reject);
        server.listen(port, host, () => {
          server.off("error", reject);
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
