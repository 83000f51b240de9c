import type { QueryLimits } from "./limits/query-limit-defaults.js";

/** What the front door enforces before any GraphQL work happens. */
export interface HttpSettings {
  /** Larger bodies get 413 (MAX_BODY_BYTES). */
  maxBodyBytes: number;
  /** Origins allowed to call the API from a browser (CORS_ORIGINS); empty = same-origin only. */
  corsOrigins: string[];
  /** Introspection queries; off in production unless GRAPHQL_INTROSPECTION=true. */
  introspection: boolean;
  /** Validation hints such as "Did you mean …?"; never in production. */
  suggestions: boolean;
  limits: QueryLimits;
  timeouts: HttpTimeouts;
}

/** How long a client may take to send a request, and to send nothing between two. */
export interface HttpTimeouts {
  /** The whole request, headers and body (REQUEST_TIMEOUT_MS); past it: 408 and the connection closes. */
  requestMs: number;
  /** The request's headers (HEADERS_TIMEOUT_MS); at most requestMs. */
  headersMs: number;
  /** An idle keep-alive connection (KEEP_ALIVE_TIMEOUT_MS). */
  keepAliveMs: number;
}

/** The graphql-ws transport's bounds: what one socket, one user, one address and the process may hold. */
export interface WsSettings {
  /** Sockets one user may have open on one instance (WS_CONNECTIONS_PER_USER); one more is closed with 1008. */
  connectionsPerUser: number;
  /** Sockets in the whole process (WS_MAX_CONNECTIONS); undefined: sized from the open-file limit (ws/fd-limit.ts). */
  maxConnections: number | undefined;
  /** Sockets of one remote address that have not authenticated yet (WS_UNAUTHENTICATED_PER_ADDRESS); one more upgrade gets 429. */
  unauthenticatedPerAddress: number;
  /** Queries and mutations executing at once on one socket (WS_OPERATIONS_PER_SOCKET); one more answers RATE_LIMITED. */
  operationsPerSocket: number;
  /** Output a socket may leave unread (WS_MAX_BUFFERED_BYTES); past it the socket is closed with 4413. */
  maxBufferedBytes: number;
  /** A ping this often (WS_KEEP_ALIVE_MS); a socket that has not answered by the next one is cut. */
  keepAliveMs: number;
}

export const DEFAULT_WS_SETTINGS: WsSettings = {
  connectionsPerUser: 30,
  maxConnections: undefined,
  unauthenticatedPerAddress: 256,
  operationsPerSocket: 16,
  maxBufferedBytes: 8 * 1024 * 1024,
  // graphql-ws' useServer default.
  keepAliveMs: 12_000,
};
