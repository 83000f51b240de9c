import { createHash } from "node:crypto";
import { getOperationAST, parse, specifiedRules, validate, type DocumentNode, type GraphQLSchema } from "graphql";

/** One known operation: parsed and validated once, when the server starts. */
export interface TrustedDocument {
  hash: string;
  text: string;
  document: DocumentNode;
}

export function sha256Hex(text: string): string {
  return createHash("sha256").update(text, "utf8").digest("hex");
}

/**
 * The operations this server knows in advance (the web client's, and any
 * TRUSTED_DOCUMENTS_FILE adds), by their sha256 and by their exact text. Each
 * was parsed and validated against the schema here, so a request naming one
 * skips parsing, validation and the limits meant for arbitrary documents, and
 * may run on the compiled executor. A manifest that does not fit the schema
 * stops the start: better than refusing its client's requests one by one.
 */
export class TrustedDocuments {
  private readonly byHash = new Map<string, TrustedDocument>();
  private readonly byText = new Map<string, TrustedDocument>();
  private readonly documents = new WeakSet<DocumentNode>();

  constructor(schema: GraphQLSchema, manifests: readonly Readonly<Record<string, string>>[]) {
    for (const manifest of manifests) {
      for (const [hash, text] of Object.entries(manifest)) this.add(schema, hash, text);
    }
  }

  get size(): number {
    return this.byHash.size;
  }

  fromHash(hash: string): TrustedDocument | undefined {
    return this.byHash.get(hash);
  }

  fromText(text: string): TrustedDocument | undefined {
    return this.byText.get(text);
  }

  /** Whether `document` is one of these (the very object handed out, as parse and execute see it). */
  has(document: DocumentNode): boolean {
    return this.documents.has(document);
  }

  private add(schema: GraphQLSchema, hash: string, text: string): void {
    if (sha256Hex(text) !== hash.toLowerCase()) throw new Error(`trusted document ${hash}: the hash is not the sha256 of its text`);
    const document = parse(text, { noLocation: false });
    const errors = validate(schema, document, specifiedRules);
    if (errors.length > 0) throw new Error(`trusted document ${hash} does not fit the schema: ${errors[0]!.message}`);
    // One operation each, so a request needs no operationName to pick it.
    if (getOperationAST(document) === null) throw new Error(`trusted document ${hash} must hold exactly one operation`);
    const entry = { hash: hash.toLowerCase(), text, document };
    this.byHash.set(entry.hash, entry);
    this.byText.set(text, entry);
    this.documents.add(document);
  }
}
