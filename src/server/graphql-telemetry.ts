import { getOperationAST, type DocumentNode, type ExecutionResult, type GraphQLError } from "graphql";
import { isAsyncIterable, type Plugin } from "graphql-yoga";
import { NO_TRACING, type Tracing } from "../lib/tracing.js";
import type { GraphQLMetrics, OperationLabels, OperationType } from "../telemetry/metrics.js";
import { maskedCode } from "./mask-error.js";

type ExecuteFunction = Parameters<NonNullable<Plugin["onExecute"]>>[0]["executeFn"];

/**
 * GraphQL metrics and the operation's span, over HTTP and graphql-ws alike
 * (both run through this envelop). A query or mutation runs inside its span,
 * so whatever it starts (a chat turn, Prisma's queries) is beneath it in the
 * trace. Errors are counted by the code the client gets (maskedCode), at the
 * phase they happen: parse, validation, execution or subscribe.
 */
export function useGraphQLTelemetry(metrics: GraphQLMetrics | undefined, tracing: Tracing = NO_TRACING): Plugin {
  const labelsOf = new WeakMap<Request, OperationLabels>();
  const remember = (context: unknown, labels: OperationLabels) => {
    const request = (context as { request?: Request }).request;
    if (request) labelsOf.set(request, labels);
  };
  const labelsFor = (document: DocumentNode | undefined, context: unknown) => {
    const { name, type } = operationOf(document, context);
    const labels = metrics?.labels(name, type) ?? { operationName: "anonymous", operationType: type };
    remember(context, labels);
    return labels;
  };
  return {
    ...(metrics ? httpDuration(metrics, labelsOf) : {}),
    onParse:
      ({ context }) =>
      ({ result }) =>
        void (result instanceof Error && metrics?.failed(labelsFor(undefined, context), maskedCode(result))),
    onValidate({ params, context }) {
      return ({ valid, result }) => {
        // Only a document that validated may add its name to the labels: made-up names stay "other".
        if (valid) metrics?.admitName(operationOf(params.documentAST, context).name);
        const labels = labelsFor(params.documentAST, context);
        if (!valid) for (let i = 0; i < result.length; i += 1) metrics?.failed(labels, "BAD_USER_INPUT");
      };
    },
    onExecute({ args, executeFn, setExecuteFn }) {
      const labels = labelsFor(args.document, args.contextValue);
      if (tracing !== NO_TRACING) setExecuteFn(traced(tracing, operationOf(args.document, args.contextValue), executeFn));
      const start = performance.now();
      return {
        onExecuteDone({ result }) {
          if (!metrics) return;
          metrics.executed(labels, (performance.now() - start) / 1000);
          if (!isAsyncIterable(result)) for (const error of result.errors ?? []) metrics.failed(labels, maskedCode(error));
        },
      };
    },
    onSubscribe({ args }) {
      const labels = labelsFor(args.document, args.contextValue);
      return {
        onSubscribeResult({ result }) {
          metrics?.executed(labels, undefined);
          if (!isAsyncIterable(result)) for (const error of result.errors ?? []) metrics?.failed(labels, maskedCode(error));
        },
        onSubscribeError({ error }) {
          metrics?.failed(labels, maskedCode(error));
        },
      };
    },
  };
}

/** graphql_yoga_http_duration: from a request to /graphql to its response, with its operation's labels. */
function httpDuration(metrics: GraphQLMetrics, labelsOf: WeakMap<Request, OperationLabels>): Pick<Plugin, "onRequest" | "onResponse"> {
  const started = new WeakMap<Request, number>();
  return {
    onRequest({ request, url }) {
      if (url.pathname === "/graphql") started.set(request, performance.now());
    },
    onResponse({ request, response }) {
      const start = started.get(request);
      if (start === undefined) return;
      const labels = labelsOf.get(request) ?? { operationName: "none", operationType: "unknown" satisfies OperationType };
      metrics.answered(request.method, response.status, labels, (performance.now() - start) / 1000);
    },
  };
}

/** execute, inside the operation's span: what runs beneath it (a chat turn, Prisma's queries) is its child. */
function traced(tracing: Tracing, operation: { name: string | undefined; type: OperationType }, executeFn: ExecuteFunction): ExecuteFunction {
  const { name, type } = operation;
  const attributes = { "graphql.operation.type": type, "graphql.operation.name": name ?? "" };
  return (executeArgs) =>
    tracing.inSpan(`${type} ${name ?? "anonymous"}`, attributes, async (span) => {
      const result = await executeFn(executeArgs);
      const code = firstErrorCode(result);
      if (code !== undefined) span.fail(code);
      return result;
    });
}

/** The operation the request runs: its name (undefined when anonymous) and type. */
function operationOf(document: DocumentNode | undefined, context: unknown): { name: string | undefined; type: OperationType } {
  const operation = document && getOperationAST(document, operationNameOf(context));
  return { name: operation?.name?.value, type: operation?.operation ?? "unknown" };
}

/** The operationName the request asked for (Yoga puts the request's params in the context). */
function operationNameOf(context: unknown): string | undefined {
  const name = (context as { params?: { operationName?: unknown } } | undefined)?.params?.operationName;
  return typeof name === "string" ? name : undefined;
}

function firstErrorCode(result: unknown): string | undefined {
  if (isAsyncIterable(result)) return undefined;
  const errors = (result as ExecutionResult).errors as readonly GraphQLError[] | undefined;
  return errors?.[0] === undefined ? undefined : maskedCode(errors[0]);
}
