import type { QueryLimits } from "./limits/query-limits.js";

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
}
