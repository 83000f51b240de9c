import { createServer } from "node:net";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { databaseUrl } from "../helpers/db.js";
import { ensureBuilt, runGroup, stopAll, type GroupProgram } from "../helpers/process.js";
import { devToken, served } from "../startup/signals-support.js";
import { scrape, spansOf, startReceiver, valueOf, type Receiver } from "./support.js";

/**
 * The production bundle (`node dist/main.js`, esbuild) with metrics and tracing on: the lazily
 * loaded chunks (prom-client, the OpenTelemetry SDK and its exporter) load and work there too.
 */

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

describe("dist/main.js with METRICS_PORT and OTEL_EXPORTER_OTLP_ENDPOINT", () => {
  const started: GroupProgram[] = [];
  let receiver: Receiver;

  beforeAll(async () => {
    await ensureBuilt();
    receiver = await startReceiver();
  }, 180_000);
  afterAll(async () => {
    await stopAll(started);
    await receiver?.close();
  });

  it("should serve /metrics and export the operation's spans over http/json, then exit 0 on SIGTERM", async () => {
    const metricsPort = await freePort();
    const env = {
      DATABASE_URL: databaseUrl(),
      PORT: "0",
      WEB_UI: "false",
      LOG_LEVEL: "info",
      METRICS_PORT: String(metricsPort),
      OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url,
      OTEL_EXPORTER_OTLP_PROTOCOL: "http/json",
    };
    const program = runGroup(process.execPath, ["dist/main.js"], { env }, started);
    const { url } = await served(program);
    const token = await devToken(program);
    const response = await fetch(url, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${token}` },
      body: JSON.stringify({ query: "query DistTraced { tasks(first: 1) { edges { node { id } } } }" }),
    });
    expect(response.status).toBe(200);
    expect(((await response.json()) as { errors?: unknown }).errors).toBeUndefined();

    const { samples } = await scrape(`http://127.0.0.1:${metricsPort}/metrics`);
    expect(valueOf(samples, "graphql_envelop_request", { operationName: "DistTraced", operationType: "query" })).toBe(1);
    // Spans are exported in batches (every 5 s by default) and at the latest when the server stops.
    expect(await program.stop(30_000)).toEqual({ code: 0, signal: null });
    await vi.waitFor(() => expect(spansOf(receiver).some((span) => span.name === "query DistTraced")).toBe(true), { timeout: 5000 });
    expect(spansOf(receiver).some((span) => span.name === "prisma:client:db_query")).toBe(true);
  });
});
