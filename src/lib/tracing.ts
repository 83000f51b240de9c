/**
 * What the code needs of tracing, with no tracing library behind it: a span
 * around a piece of work, child of whatever span is current. The server runs
 * with NO_TRACING unless OTEL_EXPORTER_OTLP_ENDPOINT is set; then
 * src/telemetry/tracing.ts (loaded only then) gives an OpenTelemetry one.
 * Attributes are ids, names, codes and counts: never message text, tokens or keys.
 */

export type SpanAttributes = Record<string, string | number | boolean>;

/** The span a piece of work runs in. */
export interface SpanScope {
  setAttributes(attributes: SpanAttributes): void;
  /** Marks the span failed; `code` is an error code or class name, never an error's message (it may quote input). */
  fail(code: string): void;
}

export interface Tracing {
  /** Runs `work` in a new span, the current one its parent; the span ends when `work` settles (a throw marks it failed). */
  inSpan<T>(name: string, attributes: SpanAttributes, work: (span: SpanScope) => Promise<T>): Promise<T>;
}

const NO_SPAN: SpanScope = { setAttributes: () => {}, fail: () => {} };

export const NO_TRACING: Tracing = { inSpan: (_name, _attributes, work) => work(NO_SPAN) };
