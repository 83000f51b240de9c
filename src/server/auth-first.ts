import type { Plugin } from "graphql-yoga";
import { bearerToken, type TokenVerifier, type Viewer } from "../auth/verifier.js";
import { AppError, ErrorCode } from "../lib/errors.js";
import { tooLargeMessage } from "../lib/http-body.js";
import { errorResponse } from "./responses.js";

export interface AuthFirstOptions {
  graphqlEndpoint: string;
  verifier: TokenVerifier;
  maxBodyBytes: number;
}

/** What the front door learned about a request before GraphQL saw it. */
export interface FrontDoorContext {
  viewer?: Viewer;
}

/**
 * Nothing is parsed, validated or even read for a caller without a valid
 * token: a declared body over the limit is 413, then a missing or bad token
 * is 401, both before the body is touched. The verified viewer rides on the
 * server context, so the GraphQL context does not verify twice. (GraphiQL's
 * HTML page and CORS preflights are answered earlier, by Yoga's own plugins.)
 */
export function useAuthFirst(options: AuthFirstOptions): Plugin {
  return {
    async onRequest({ request, url, serverContext, endResponse }) {
      if (url.pathname !== options.graphqlEndpoint) return;
      const accept = request.headers.get("accept");
      const tooLarge = declaredTooLarge(request, options.maxBodyBytes);
      if (tooLarge) return endResponse(tooLarge);
      try {
        (serverContext as FrontDoorContext).viewer = await options.verifier.verify(bearerToken(request.headers.get("authorization")));
      } catch (error) {
        const message = error instanceof AppError ? error.message : "Invalid token";
        endResponse(errorResponse(401, ErrorCode.UNAUTHENTICATED, message, { accept, headers: { "www-authenticate": 'Bearer realm="graphql"' } }));
      }
    },
  };
}

/** 413 when Content-Length alone says the body is too large; chunked bodies are cut while read. */
function declaredTooLarge(request: Request, maxBodyBytes: number): Response | undefined {
  const declared = request.headers.get("content-length");
  if (declared === null || !/^\d+$/.test(declared) || Number(declared) <= maxBodyBytes) return undefined;
  return errorResponse(413, ErrorCode.BAD_USER_INPUT, tooLargeMessage(maxBodyBytes), {
    accept: request.headers.get("accept"),
    extensions: { limit: "MAX_BODY_BYTES" },
  });
}
