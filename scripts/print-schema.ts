import { writeFile } from "node:fs/promises";
import { printSchemaSorted } from "../src/schema/print.js";

// Writes schema.graphql from the Pothos builder. tests/schema/schema-file.test.ts
// fails when the committed file differs, so run this after every schema change.
const target = new URL("../schema.graphql", import.meta.url);
await writeFile(target, printSchemaSorted());
console.log(`wrote ${target.pathname}`);
