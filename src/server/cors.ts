import type { CORSOptions } from "graphql-yoga";

/**
 * CORS by allow-list only. Yoga's default reflects any Origin with
 * credentials, which lets every web page call the API with whatever the
 * browser holds. Here an Origin that is not listed gets no CORS headers at
 * all (the browser then refuses the response), and a listed one gets itself
 * back, never a reflection. Empty list: same-origin only.
 */
export function corsPolicy(allowed: readonly string[]) {
  const origins = new Set(allowed);
  return (request: Request): CORSOptions => {
    const origin = request.headers.get("origin");
    if (origin === null || !origins.has(origin)) return false;
    return {
      origin: [origin],
      credentials: true,
      methods: ["GET", "POST", "OPTIONS"],
      allowedHeaders: ["authorization", "content-type", "accept", "x-request-id"],
      exposedHeaders: ["x-request-id", "retry-after"],
      maxAge: 600,
    };
  };
}
