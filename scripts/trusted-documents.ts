import { writeFile } from "node:fs/promises";
import { pathToFileURL } from "node:url";
import { formatDocument, stringifyDocument } from "@urql/core";
import type { DocumentNode } from "graphql";
import { sha256Hex } from "../src/server/trusted-documents.js";

// `npm run trusted-documents` writes src/server/trusted-manifest.ts: every
// operation of the web client (web/src/documents.ts) by the sha256 of its text,
// the text exactly as urql sends it (graphcache adds __typename, then urql
// prints it). The server trusts these (src/server/persisted-operations.ts).
// tests/api/trusted-documents.test.ts fails when the committed file differs.

const TARGET = new URL("../src/server/trusted-manifest.ts", import.meta.url);

/** The web client's operations as `[hash, text]`, sorted by hash. */
export async function webManifest(): Promise<[string, string][]> {
  const documentsUrl = pathToFileURL(new URL("../web/src/documents.ts", import.meta.url).pathname).href;
  const exported = (await import(documentsUrl)) as Record<string, unknown>;
  const entries: [string, string][] = [];
  for (const value of Object.values(exported)) {
    const document = value as DocumentNode;
    if (!document?.definitions?.some((definition) => definition.kind === "OperationDefinition")) continue;
    const text = stringifyDocument(formatDocument(document));
    entries.push([sha256Hex(text), text]);
  }
  return entries.sort(([a], [b]) => a.localeCompare(b));
}

export function manifestModule(entries: [string, string][]): string {
  const body = entries.map(([hash, text]) => `  ${JSON.stringify(hash)}:\n    ${JSON.stringify(text)},`).join("\n");
  return (
    `// Written by \`npm run trusted-documents\` (scripts/trusted-documents.ts) from web/src/documents.ts; do not edit.\n` +
    `/** The web client's operations by the sha256 (hex) of their text, the text as urql sends it. */\n` +
    `export const WEB_DOCUMENTS: Readonly<Record<string, string>> = {\n${body}\n};\n`
  );
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? "").href) {
  const entries = await webManifest();
  await writeFile(TARGET, manifestModule(entries));
  console.log(`wrote ${TARGET.pathname} (${entries.length} operations)`);
}
