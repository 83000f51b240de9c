import type { ErrorCode } from "../lib/errors.js";

/**
 * A GraphQL-over-HTTP error for answers given before any GraphQL runs (401,
 * 413, 415, 500 from the front door), in the shape clients get from
 * execution: `{ errors: [{ message, extensions: { code } }] }`. An SSE client
 * gets it as one `next` event followed by `complete`, as Yoga would send it.
 */
export function errorResponse(
  status: number,
  code: ErrorCode,
  message: string,
  options: { headers?: Record<string, string>; extensions?: Record<string, unknown>; accept?: string | null } = {},
): Response {
  const result = JSON.stringify({ errors: [{ message, extensions: { ...options.extensions, code } }] });
  const accept = options.accept ?? "";
  if (accept.includes("text/event-stream") && !accept.includes("json")) {
    const body = `event: next\ndata: ${result}\n\nevent: complete\ndata:\n\n`;
    return new Response(body, { status, headers: { "content-type": "text/event-stream; charset=utf-8", ...options.headers } });
  }
  const contentType = accept.includes("application/graphql-response+json")
    ? "application/graphql-response+json; charset=utf-8"
    : "application/json; charset=utf-8";
  return new Response(result, { status, headers: { "content-type": contentType, ...options.headers } });
}
