import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import type { Logger } from "../lib/logger.js";
import type { AppMetrics } from "../telemetry/metrics.js";

/** Where /metrics is served (METRICS_PORT, METRICS_HOST): never the API's own listener. */
export interface MetricsSettings {
  port: number;
  /** Loopback unless told otherwise: the metrics say how busy the instance is, which is no client's business. */
  host: string;
}

/**
 * The metrics listener: a plain HTTP server of its own that answers GET
 * /metrics and 404 to anything else. It starts with the app and closes last,
 * so the drain can be watched. A port it cannot bind (in use, not allowed) is
 * one warning line: the API serves on without metrics.
 */
export class MetricsListener {
  private readonly server: Server;

  constructor(
    private readonly metrics: AppMetrics,
    private readonly settings: MetricsSettings,
    private readonly logger: Logger,
  ) {
    this.server = createServer((request, response) => {
      const path = (request.url ?? "/").split("?")[0];
      if (path !== "/metrics" || (request.method !== "GET" && request.method !== "HEAD")) {
        response.writeHead(404, { "content-type": "text/plain" }).end("Not found\n");
        return;
      }
      this.metrics.scrape().then(
        ({ body, contentType }) => response.writeHead(200, { "content-type": contentType }).end(request.method === "HEAD" ? undefined : body),
        (error: unknown) => {
          this.logger.warn({ err: error }, "collecting metrics failed");
          response.writeHead(500, { "content-type": "text/plain" }).end("Could not collect metrics\n");
        },
      );
    });
    this.server.keepAliveTimeout = 5000;
  }

  /** The bound port, or undefined when it could not bind. Never rejects. */
  start(): Promise<number | undefined> {
    const { port, host } = this.settings;
    return new Promise((resolve) => {
      const failed = (error: NodeJS.ErrnoException) => {
        const why = error.code === "EADDRINUSE" ? "the address is in use" : (error.code ?? error.message);
        this.logger.warn(
          { port, host, code: error.code },
          `metrics listener not started on ${host}:${port} (${why}); the API serves without /metrics`,
        );
        resolve(undefined);
      };
      this.server.once("error", failed);
      this.server.listen(port, host, () => {
        this.server.off("error", failed);
        this.server.on("error", (error) => this.logger.warn({ err: error }, "metrics listener error"));
        const bound = (this.server.address() as AddressInfo).port;
        this.logger.info({ port: bound, host }, `metrics at http://${host.includes(":") ? `[${host}]` : host}:${bound}/metrics`);
        resolve(bound);
      });
    });
  }

  close(): Promise<void> {
    return new Promise((resolve) => {
      if (!this.server.listening) return resolve();
      this.server.close(() => resolve());
      this.server.closeAllConnections();
    });
  }
}
