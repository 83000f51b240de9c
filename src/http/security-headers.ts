import type { Plugin } from "graphql-yoga";

/**
 * Headers every answer carries. HTML (GraphiQL, which may hold the dev
 * token) is never framed by another page and never cached.
 */
export function useSecurityHeaders(): Plugin {
  return {
    onResponse({ response }) {
      response.headers.set("x-content-type-options", "nosniff");
      response.headers.set("referrer-policy", "no-referrer");
      if (response.headers.get("content-type")?.startsWith("text/html")) {
        response.headers.set("x-frame-options", "DENY");
        response.headers.set("content-security-policy", "frame-ancestors 'none'");
        response.headers.set("cache-control", "no-store");
      }
    },
  };
}
