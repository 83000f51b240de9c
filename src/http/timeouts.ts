import type { ServerOptions } from "node:http";
import type { HttpTimeouts } from "../config.js";

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
