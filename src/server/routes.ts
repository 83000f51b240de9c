import type { Plugin } from "graphql-yoga";
import { ErrorCode } from "../lib/errors.js";
import type { Logger } from "../lib/logger.js";
import { errorResponse } from "./responses.js";

/** Answers a request, or returns undefined to let the next route (and finally GraphQL) have it. */
export type RouteHandler = (request: Request, serverContext: Record<string, unknown>) => Promise<Response | undefined> | Response | undefined;

export interface Route {
  /** An exact path, or a prefix ending in "/" ("/" alone is the root page only, not a prefix of everything). */
  path: string;
  handle: RouteHandler;
}

/**
 * The routes beside GraphQL (/mcp, GraphiQL's assets) as a Yoga plugin, so
 * they share the one pipeline: request id, access log, CORS, security headers.
 * A route that throws answers a masked 500 and logs why; it never reaches
 * the server adapter, whose fallback would send the stack trace.
 */
export function useRoutes(routes: readonly Route[], logger: Logger): Plugin {
  return {
    // Not async: a request for none of the routes (every GraphQL request) goes on at once, without a promise.
    onRequest({ request, url, serverContext, endResponse }) {
      const route = routes.find((r) => matches(r.path, url.pathname));
      if (!route) return;
      return answer(route, request, serverContext as Record<string, unknown>, url.pathname, logger).then((response) => {
        if (response) endResponse(response);
      });
    },
  };
}

async function answer(
  route: Route,
  request: Request,
  serverContext: Record<string, unknown>,
  path: string,
  logger: Logger,
): Promise<Response | undefined> {
  try {
    return await route.handle(request, serverContext);
  } catch (error) {
    logger.error({ err: error, path }, "route failed");
    return internalError(request);
  }
}

function matches(path: string, pathname: string): boolean {
  if (path !== "/" && path.endsWith("/")) return pathname.startsWith(path);
  return pathname === path;
}

export function internalError(request?: Request): Response {
  return errorResponse(500, ErrorCode.INTERNAL_SERVER_ERROR, "Unexpected error", { accept: request?.headers.get("accept") });
}
