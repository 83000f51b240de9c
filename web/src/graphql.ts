import { initGraphQLTada } from "gql.tada";
import type { introspection } from "./graphql-env.d.ts";

/**
 * Typed documents from schema.graphql: `npm run web:types` regenerates
 * graphql-env.d.ts after the schema changes. Masking is off: this app reads
 * fields where it queries them.
 */
export const graphql = initGraphQLTada<{
  introspection: introspection;
  disableMasking: true;
  scalars: { DateTime: string; JSON: unknown };
}>();

export type { ResultOf, VariablesOf } from "gql.tada";
