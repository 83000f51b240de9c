import type { ServerOptions } from "node:http";
import type { HttpTimeouts } from "./settings.js";

/**
 * REQUEST_TIMEOUT_MS when unset: 30 s per started MiB of MAX_BODY_BYTES (30 s at the default 1 MiB),
 * so a body at the limit must arrive at about 35 KB/s or faster, whatever the limit is.
 */
export function defaultRequestTimeoutMs(maxBodyBytes: number): number {
  return 30_000 * Math.max(1, Math.ceil(maxBodyBytes / (1024 * 1024)));
}

/**
 * Node's own defaults hold a request for 300 s and check only every 30 s, so
 * a body trickled in a byte at a time pins its connection (and the handler
 * waiting for it) for five minutes. These answer 408 and close once
 * REQUEST_TIMEOUT_MS or HEADERS_TIMEOUT_MS passes. They cover receiving the
 * request only: a long answer (SSE, a chat turn) is not cut by them.
 */
export function serverTimeouts(timeouts: HttpTimeouts): ServerOptions {
  return {
    requestTimeout: timeouts.requestMs,
    headersTimeout: timeouts.headersMs,
    keepAliveTimeout: timeouts.keepAliveMs,
    // How often expired requests are looked for: a quarter of the shorter timeout, at most every second.
    connectionsCheckingInterval: Math.max(25, Math.min(1000, Math.floor(Math.min(timeouts.headersMs, timeouts.requestMs) / 4))),
  };
}
