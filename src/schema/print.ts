import { lexicographicSortSchema, printSchema } from "graphql";
import { schema } from "./index.js";

export function printSchemaSorted(): string {
  return `${printSchema(lexicographicSortSchema(schema))}\n`;
}
