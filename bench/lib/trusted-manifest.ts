import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { sha256Hex } from "../../src/server/trusted-documents.js";

/**
 * A TRUSTED_DOCUMENTS_FILE holding `documents`, as a deployment registers its
 * clients' operations; the API then recognises them by their text (what the
 * bench sends), skipping parsing and validation, and runs them compiled.
 */
export function trustedManifest(documents: readonly string[]): string {
  const file = path.join(mkdtempSync(path.join(tmpdir(), "todo-bench-trusted-")), "trusted-documents.json");
  writeFileSync(file, JSON.stringify(Object.fromEntries(documents.map((text) => [sha256Hex(text), text]))));
  return file;
}
