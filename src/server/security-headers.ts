import type { Plugin } from "graphql-yoga";

/**
 * Headers every answer carries. HTML (GraphiQL and the web client, which may
 * hold the dev token) is never framed by another page and never cached. A
 * page that brings its own, stricter policy (the web client) keeps it.
 */
export function useSecurityHeaders(): Plugin {
  return {
    onResponse({ response }) {
      response.headers.set("x-content-type-options", "nosniff");
      response.headers.set("referrer-policy", "no-referrer");
      if (response.headers.get("content-type")?.startsWith("text/html")) {
        response.headers.set("x-frame-options", "DENY");
        if (!response.headers.has("content-security-policy")) response.headers.set("content-security-policy", "frame-ancestors 'none'");
        response.headers.set("cache-control", "no-store");
      }
    },
  };
}
