import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import type { AppDeps } from "../../src/server/app.js";
import { AppMetrics } from "../../src/telemetry/metrics.js";

/** Metrics on a listener of their own, on a free loopback port. */
export function testMetrics(port = 0): NonNullable<AppDeps["metrics"]> {
  return { port, host: "127.0.0.1", create: (sources) => new AppMetrics(sources) };
}

export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** The samples of a Prometheus text exposition (comments left out). */
export function parseExposition(text: string): Sample[] {
  const samples: Sample[] = [];
  for (const line of text.split("\n")) {
    if (line === "" || line.startsWith("#")) continue;
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!match) throw new Error(`not a sample line: ${line}`);
    const labels: Record<string, string> = {};
    for (const pair of (match[2] ?? "").matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) labels[pair[1]!] = pair[2]!;
    samples.push({ name: match[1]!, labels, value: Number(match[3]) });
  }
  return samples;
}

/** The value of the one sample named `name` whose labels include `labels`; 0 when there is none. */
export function valueOf(samples: readonly Sample[], name: string, labels: Record<string, string> = {}): number {
  const found = samples.filter((sample) => sample.name === name && Object.entries(labels).every(([key, value]) => sample.labels[key] === value));
  if (found.length > 1) throw new Error(`${found.length} samples of ${name} match ${JSON.stringify(labels)}`);
  return found[0]?.value ?? 0;
}

export async function scrape(metricsUrl: string | undefined): Promise<{ text: string; samples: Sample[] }> {
  if (metricsUrl === undefined) throw new Error("the server has no metrics listener");
  const response = await fetch(metricsUrl);
  if (response.status !== 200) throw new Error(`GET /metrics answered ${response.status}`);
  const text = await response.text();
  return { text, samples: parseExposition(text) };
}

export interface OtlpSpan {
  traceId: string;
  spanId: string;
  parentSpanId?: string;
  name: string;
  attributes?: { key: string; value: { stringValue?: string; intValue?: string | number; boolValue?: boolean } }[];
}

export interface Receiver {
  url: string;
  bodies: { contentType: string; body: Buffer }[];
  close(): Promise<void>;
}

/** An OTLP/HTTP collector: keeps every body POSTed to /v1/traces and answers as a collector does. */
export async function startReceiver(): Promise<Receiver> {
  const bodies: Receiver["bodies"] = [];
  const server: Server = createServer((request, response) => {
    const chunks: Buffer[] = [];
    request.on("data", (chunk: Buffer) => chunks.push(chunk));
    request.on("end", () => {
      if (request.method !== "POST" || request.url !== "/v1/traces") return void response.writeHead(404).end();
      const contentType = request.headers["content-type"] ?? "";
      bodies.push({ contentType, body: Buffer.concat(chunks) });
      if (contentType.includes("json")) response.writeHead(200, { "content-type": "application/json" }).end("{}");
      else response.writeHead(200, { "content-type": "application/x-protobuf" }).end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    bodies,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}

export function spansOf(receiver: Receiver): OtlpSpan[] {
  return receiver.bodies.flatMap(({ body }) => {
    const exported = JSON.parse(body.toString("utf8")) as { resourceSpans: { scopeSpans: { spans: OtlpSpan[] }[] }[] };
    return exported.resourceSpans.flatMap((resource) => resource.scopeSpans.flatMap((scope) => scope.spans));
  });
}
