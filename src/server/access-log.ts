import type { Plugin } from "graphql-yoga";
import type { Logger } from "../lib/logger.js";

/** One line per answered request, on every route, carrying the request id (from the logger's mixin). */
export function useAccessLog(logger: Logger): Plugin {
  return {
    onResponse({ request, response, serverContext }) {
      const started = (serverContext as { startedAt?: number }).startedAt;
      logger.info(
        {
          method: request.method,
          path: pathOf(request.url),
          status: response.status,
          ms: started === undefined ? undefined : Date.now() - started,
        },
        "request",
      );
    },
  };
}

function pathOf(url: string): string | undefined {
  try {
    return new URL(url).pathname;
  } catch {
    return undefined;
  }
}
