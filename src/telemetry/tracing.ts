import { context, propagation, SpanStatusCode, trace, type Span } from "@opentelemetry/api";
import { ExportResultCode, type ExportResult } from "@opentelemetry/core";
import { PrismaInstrumentation } from "@prisma/instrumentation";
import { resourceFromAttributes } from "@opentelemetry/resources";
import { BatchSpanProcessor, NodeTracerProvider, type ReadableSpan, type SpanExporter } from "@opentelemetry/sdk-trace-node";
import { AppError } from "../lib/errors.js";
import type { Logger } from "../lib/logger.js";
import type { SpanScope, Tracing } from "../lib/tracing.js";

/**
 * OpenTelemetry tracing, loaded (with the SDK) only when OTEL_EXPORTER_OTLP_ENDPOINT
 * is set: a start without it does not pay for these modules. Spans go over
 * OTLP/HTTP, as JSON or protobuf, in batches; Prisma's own spans (each query,
 * each transaction) come from @prisma/instrumentation, which works with driver
 * adapters: Prisma 7's client emits `prisma:client:db_query` spans itself.
 * An endpoint that does not answer loses spans, never requests: one warning
 * line when exports start failing, one info line when they work again.
 */

export interface TracingSettings {
  /** OTEL_EXPORTER_OTLP_ENDPOINT: the collector's base URL; spans go to <endpoint>/v1/traces. */
  endpoint: string;
  protocol: "http/json" | "http/protobuf";
  serviceName: string;
  logger: Logger;
  /** Spans per batch export, and how long a span may wait for one (ms). Defaults: the SDK's. */
  batch?: { maxExportBatchSize?: number; scheduledDelayMillis?: number };
  /** How long one export may take, retries included (ms). Default 10 s, the SDK's. */
  exportTimeoutMs?: number;
}

/** At shutdown, how long the last spans may take to go out: a collector that is down must not hold the exit. */
const SHUTDOWN_EXPORT_MS = 2000;

export interface TracingHandle {
  tracing: Tracing;
  /** Exports what is buffered now (never rejects: a failed export is logged). */
  flush(): Promise<void>;
  /** Exports what is left, then stops (the last step of a shutdown). */
  shutdown(): Promise<void>;
}

export async function startTracing(settings: TracingSettings): Promise<TracingHandle> {
  const url = `${settings.endpoint.replace(/\/+$/, "")}/v1/traces`;
  const inner = await otlpExporter(settings.protocol, { url, timeoutMillis: settings.exportTimeoutMs });
  const exporter = new ReportingExporter(inner, settings.logger, new URL(url).origin);
  const provider = new NodeTracerProvider({
    resource: resourceFromAttributes({ "service.name": settings.serviceName }),
    spanProcessors: [new BatchSpanProcessor(exporter, settings.batch)],
  });
  // The global provider, an AsyncLocalStorage context manager and W3C propagation: a turn
  // launched from a request keeps the request's span as its parent, however long it runs.
  provider.register();
  const prisma = new PrismaInstrumentation({ enabled: false });
  prisma.setTracerProvider(provider);
  prisma.enable();
  settings.logger.info({ endpoint: new URL(url).origin, protocol: settings.protocol }, "tracing on: spans are exported over OTLP/HTTP");
  return {
    tracing: otelTracing(provider.getTracer("todo-assistant-api")),
    // A failed export was logged by the exporter already; flushing and stopping never fail for it.
    flush: () => provider.forceFlush().catch(() => {}),
    shutdown: async () => {
      prisma.disable();
      let timer: NodeJS.Timeout | undefined;
      const late = new Promise<void>((resolve) => (timer = setTimeout(resolve, SHUTDOWN_EXPORT_MS)));
      await Promise.race([provider.shutdown().catch(() => {}), late]);
      clearTimeout(timer);
      // Hands the process' globals back, so a later start (a test's) can register its own.
      trace.disable();
      context.disable();
      propagation.disable();
    },
  };
}

/** The exporter of the protocol asked for; each is loaded only when used. */
async function otlpExporter(
  protocol: TracingSettings["protocol"],
  options: { url: string; timeoutMillis?: number | undefined },
): Promise<SpanExporter> {
  const module =
    protocol === "http/json" ? await import("@opentelemetry/exporter-trace-otlp-http") : await import("@opentelemetry/exporter-trace-otlp-proto");
  return new (commonJsExports(module).OTLPTraceExporter)(options);
}

type ExporterModule = typeof import("@opentelemetry/exporter-trace-otlp-http");

/**
 * The exporters are CommonJS, and how the exports of a dynamic import arrive depend on who loads
 * it: Node's loader gives them named, the dist/ bundle's chunk as `default` only.
 */
function commonJsExports(module: ExporterModule & { default?: ExporterModule }): ExporterModule {
  return module.OTLPTraceExporter === undefined && module.default !== undefined ? module.default : module;
}

function otelTracing(tracer: ReturnType<NodeTracerProvider["getTracer"]>): Tracing {
  return {
    inSpan: (name, attributes, work) =>
      tracer.startActiveSpan(name, { attributes }, context.active(), async (span) => {
        try {
          return await work(scope(span));
        } catch (error) {
          // The error's code or class, never its message: a message may quote what the user sent.
          span.setStatus({ code: SpanStatusCode.ERROR, message: error instanceof AppError ? error.code : errorName(error) });
          throw error;
        } finally {
          span.end();
        }
      }),
  };
}

function scope(span: Span): SpanScope {
  return {
    setAttributes: (attributes) => void span.setAttributes(attributes),
    fail: (code) => void span.setStatus({ code: SpanStatusCode.ERROR, message: code }),
  };
}

function errorName(error: unknown): string {
  return error instanceof Error ? error.name : "Error";
}

/** Passes spans to the OTLP exporter and says, once per outage, when the collector does not take them. */
class ReportingExporter implements SpanExporter {
  private failing = false;

  constructor(
    private readonly inner: SpanExporter,
    private readonly logger: Logger,
    /** Where spans go, without path or credentials: what the log lines name. */
    private readonly origin: string,
  ) {}

  export(spans: ReadableSpan[], done: (result: ExportResult) => void): void {
    this.inner.export(spans, (result) => {
      if (result.code !== ExportResultCode.SUCCESS && !this.failing) {
        this.failing = true;
        const reason = result.error?.message.slice(0, 200) ?? "no reason given";
        this.logger.warn(
          { endpoint: this.origin, reason },
          `could not export traces to ${this.origin}; spans are dropped until it answers (the API is not affected)`,
        );
      } else if (result.code === ExportResultCode.SUCCESS && this.failing) {
        this.failing = false;
        this.logger.info({ endpoint: this.origin }, "exporting traces again");
      }
      done(result);
    });
  }

  shutdown(): Promise<void> {
    return this.inner.shutdown();
  }

  forceFlush(): Promise<void> {
    return this.inner.forceFlush?.() ?? Promise.resolve();
  }
}
