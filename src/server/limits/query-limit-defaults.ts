// The limits' shape and defaults apart from the plugins that enforce them: the configuration
// reads these at the very start, and must not load graphql (and GraphQL Armor) to do so.

export interface QueryLimits {
  depth: number;
  aliases: number;
  tokens: number;
  directives: number;
  /** Nested page sizes multiply: see src/server/limits/query-cost.ts. */
  cost: number;
}

export const DEFAULT_QUERY_LIMITS: QueryLimits = { depth: 10, aliases: 15, tokens: 1000, directives: 50, cost: 5000 };
