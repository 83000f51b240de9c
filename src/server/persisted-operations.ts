import { GraphQLError } from "graphql";
import type { GraphQLParams, Plugin } from "graphql-yoga";
import { ErrorCode } from "../lib/errors.js";
import type { TrustedDocuments } from "./trusted-documents.js";

export interface PersistedOperationsOptions {
  documents: TrustedDocuments;
  /** ALLOW_ARBITRARY_OPERATIONS: whether a document that is not a trusted one may run at all. */
  allowArbitrary: boolean;
}

/** What a client may send to name a trusted document: Apollo's APQ extension, or the GraphQL-over-HTTP `documentId`. */
export interface OperationRequest {
  query?: unknown;
  documentId?: unknown;
  extensions?: unknown;
}

/**
 * The document text a request stands for: a trusted document's when it names
 * one by hash (whatever query text came with it), else the text it sent, which
 * only runs if it is a trusted document's or arbitrary documents are allowed.
 * Shared by HTTP (below) and graphql-ws (ws/operations.ts), so neither is a
 * way around the other's refusal.
 */
export function resolveOperationText(request: OperationRequest, options: PersistedOperationsOptions): string | undefined {
  const hash = hashOf(request);
  if (hash !== undefined) {
    const known = options.documents.fromHash(hash.toLowerCase());
    if (known) return known.text;
    throw new GraphQLError(
      `No trusted document has the hash ${hash.slice(0, 64)}: send the document's text, or a hash of the web client's documents`,
      {
        extensions: { code: ErrorCode.PERSISTED_QUERY_NOT_FOUND, http: { status: 404 } },
      },
    );
  }
  const text = typeof request.query === "string" ? request.query : undefined;
  if (options.allowArbitrary || text === undefined || options.documents.fromText(text)) return text;
  throw new GraphQLError(
    "Only trusted documents run on this server (ALLOW_ARBITRARY_OPERATIONS=false): send a known document's sha256 as extensions.persistedQuery.sha256Hash or documentId",
    { extensions: { code: ErrorCode.PERSISTED_QUERY_REQUIRED, http: { status: 400 } } },
  );
}

function hashOf(request: OperationRequest): string | undefined {
  if (typeof request.documentId === "string") return withoutPrefix(request.documentId);
  const persisted = (request.extensions as { persistedQuery?: { sha256Hash?: unknown } } | null | undefined)?.persistedQuery;
  return typeof persisted?.sha256Hash === "string" ? persisted.sha256Hash : undefined;
}

/** `documentId` may carry the hash's algorithm, as the GraphQL-over-HTTP draft writes it ("sha256:…"). */
function withoutPrefix(id: string): string {
  return id.startsWith("sha256:") ? id.slice("sha256:".length) : id;
}

/**
 * Trusted documents over HTTP. The hash is resolved as the body is parsed,
 * before Yoga checks the parameters; `documentId` is then dropped, so Yoga sees
 * a plain `query`. A trusted document's text is handed the parsed document of
 * the manifest and skips validation (it was validated when the server started),
 * and with it the limit rules that exist for arbitrary documents (depth,
 * aliases, directives, tokens). The cost limit still runs: it depends on the
 * request's variables.
 */
export function usePersistedOperations(options: PersistedOperationsOptions): Plugin {
  const { documents } = options;
  return {
    onRequestParse() {
      return {
        onRequestParseDone({ requestParserResult, setRequestParserResult }) {
          if (Array.isArray(requestParserResult)) {
            setRequestParserResult(requestParserResult.map((params) => resolved(params, options)));
          } else {
            setRequestParserResult(resolved(requestParserResult, options));
          }
        },
      };
    },
    onParse({ params, setParsedDocument }) {
      const known = typeof params.source === "string" ? documents.fromText(params.source) : undefined;
      if (known) setParsedDocument(known.document);
    },
    onValidate({ params, setResult }) {
      if (documents.has(params.documentAST)) setResult([]);
    },
  };
}

function resolved(params: GraphQLParams, options: PersistedOperationsOptions): GraphQLParams {
  const { documentId: _documentId, ...rest } = params as GraphQLParams & { documentId?: unknown };
  const query = resolveOperationText(params as OperationRequest, options);
  return query === undefined ? rest : { ...rest, query };
}
