import { createYoga, type GraphiQLOptions, type YogaInitialContext, type YogaServerInstance, type YogaServerOptions } from "graphql-yoga";
import type { TokenVerifier } from "../auth/verifier.js";
import type { Logger } from "../lib/logger.js";
import { useConnectionArgsGuard } from "../schema/connection-args.js";
import type { Context } from "../schema/context.js";
import { useDeferredErrors } from "../schema/deferred-errors.js";
import { schema } from "../schema/index.js";
import type { Tracing } from "../lib/tracing.js";
import type { GraphQLMetrics } from "../telemetry/metrics.js";
import { useAccessLog } from "./access-log.js";
import { useCompiledExecution } from "./compiled-execution.js";
import { useAuthFirst } from "./auth-first.js";
import { corsPolicy } from "./cors.js";
import { useDrainableSubscriptions, type Drain } from "./drain.js";
import type { RequestServerContext } from "./front-door.js";
import { graphiqlOptions, renderLocalGraphiQL } from "./graphiql.js";
import { useGraphQLTelemetry } from "./graphql-telemetry.js";
import { useNoIntrospection, useQueryLimits } from "./limits/query-limits.js";
import { usePersistedOperations, type PersistedOperationsOptions } from "./persisted-operations.js";
import { isSameOriginLoopback } from "./local-request.js";
import { useValidationErrorCode } from "./mask-error.js";
import { readinessRoute } from "./readiness.js";
import { useRoutes, type Route } from "./routes.js";
import { useSecurityHeaders } from "./security-headers.js";
import type { HttpSettings } from "./settings.js";
import { useSharedSubscriptionExecution } from "./shared-execution.js";
import { useStrictRequestParsing } from "./strict-body.js";
import { useUnskippableSubscriptionRoot } from "./unskippable-subscription-root.js";
import type { MaskError } from "./ws/error-format.js";

export type AppYoga = YogaServerInstance<Record<string, unknown>, Context>;
type Plugins = NonNullable<YogaServerOptions<Record<string, unknown>, Context>["plugins"]>;

/** What the GraphQL server is made of: every route (the GraphQL endpoint, MCP, GraphiQL, the web client) goes through its one pipeline. */
export interface YogaParts {
  http: HttpSettings;
  logger: Logger;
  verifier: TokenVerifier;
  maskError: MaskError;
  drain: Drain;
  /** The routes answered before GraphQL (MCP, GraphiQL's assets, the web client). */
  routes: Route[];
  /** GraphiQL at GET /graphql, or false; `devHeaders` go only into pages served to this machine. */
  graphiql: false | { devHeaders?: Record<string, string> };
  /** Whether /ready answers 200. */
  ready: () => Promise<boolean>;
  context: (initial: YogaInitialContext) => Promise<Context>;
  /** The trusted documents (the web client's and TRUSTED_DOCUMENTS_FILE's) and whether others may run (ALLOW_ARBITRARY_OPERATIONS). */
  trusted: PersistedOperationsOptions;
  /** GraphQL metrics (METRICS_PORT) and operation spans (OTEL_EXPORTER_OTLP_ENDPOINT); neither when unset. */
  telemetry?: { metrics?: GraphQLMetrics | undefined; tracing?: Tracing | undefined };
}

export function createYogaServer(parts: YogaParts): AppYoga {
  return createYoga<Record<string, unknown>, Context>({
    schema,
    graphqlEndpoint: "/graphql",
    healthCheckEndpoint: "/health",
    landingPage: false,
    logging: false,
    multipart: false,
    // Bodies are read (and limited) by useStrictRequestParsing.
    maxRequestBodySize: false,
    cors: corsPolicy(parts.http.corsOrigins),
    graphiql: graphiqlFor(parts.graphiql),
    renderGraphiQL: renderLocalGraphiQL,
    maskedErrors: { maskError: parts.maskError },
    context: parts.context,
    plugins: pipeline(parts),
  });
}

/** The plugins in the order a request meets them: log, telemetry, headers, routes (/ready first), auth, body, trusted documents, limits, validation, execution, drain. */
export function pipeline(parts: YogaParts): Plugins {
  const { http, logger, telemetry } = parts;
  return [
    // First, so the telemetry's span and every other execute hook wrap the compiled executor rather than being replaced by it.
    useCompiledExecution(parts.trusted.documents),
    useAccessLog(logger),
    ...(telemetry?.metrics || telemetry?.tracing ? [useGraphQLTelemetry(telemetry.metrics, telemetry.tracing)] : []),
    useSecurityHeaders(),
    useRoutes([readinessRoute(parts.ready), ...parts.routes], logger),
    useAuthFirst({ graphqlEndpoint: "/graphql", verifier: parts.verifier, maxBodyBytes: http.maxBodyBytes }),
    useStrictRequestParsing(http.maxBodyBytes),
    usePersistedOperations(parts.trusted),
    ...useQueryLimits(http.limits),
    ...(http.introspection ? [] : [useNoIntrospection()]),
    useUnskippableSubscriptionRoot(),
    useValidationErrorCode({ suggestions: http.suggestions }),
    useConnectionArgsGuard(),
    useDeferredErrors(),
    useSharedSubscriptionExecution(),
    useDrainableSubscriptions(parts.drain.signal),
  ];
}

/** The dev token goes only into pages served to this machine's own same-origin requests. */
function graphiqlFor(graphiql: YogaParts["graphiql"]) {
  if (!graphiql) return false;
  return (request: Request, serverContext: Record<string, unknown> | undefined): GraphiQLOptions => {
    const trusted = isSameOriginLoopback(request, (serverContext as Partial<RequestServerContext> | undefined)?.req);
    return graphiqlOptions(trusted ? graphiql.devHeaders : undefined);
  };
}
