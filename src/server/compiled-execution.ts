import {
  getOperationAST,
  GraphQLError,
  Kind,
  visit,
  type DocumentNode,
  type ExecutionArgs,
  type ExecutionResult,
  type FieldNode,
  type OperationDefinitionNode,
} from "graphql";
import { getVariableValues } from "graphql/execution/values.js";
import { compileQuery, isCompiledQuery, type CompiledQuery } from "graphql-jit";
import type { Plugin } from "graphql-yoga";
import type { TrustedDocuments } from "./trusted-documents.js";

/** A trusted document's query or mutation, compiled once, and where its fields are (for errors). */
interface Compiled {
  operation: OperationDefinitionNode;
  query: CompiledQuery["query"];
  fields?: Map<string, FieldNode>;
}

/**
 * Queries and mutations of trusted documents run on graphql-jit's compiled
 * executor: one compilation per document, kept for the process (the manifest
 * bounds how many). Arbitrary documents and every subscription stay on
 * graphql-js. What a client gets is graphql-js' answer to the letter
 * (tests/api/trusted-documents.test.ts): the variables are coerced by
 * graphql-js first, so a bad one is the same request error, and graphql-jit's
 * field errors (its own error class, without nodes) are made graphql-js
 * GraphQLErrors at the same field, so masking and locations are as before.
 */
export function useCompiledExecution(documents: TrustedDocuments): Plugin {
  const compiled = new WeakMap<DocumentNode, Compiled | null>();
  return {
    onExecute({ args, setExecuteFn }) {
      if (!documents.has(args.document)) return;
      let entry = compiled.get(args.document);
      if (entry === undefined) compiled.set(args.document, (entry = compile(args)));
      if (entry) setExecuteFn((executeArgs) => execute(entry, executeArgs as ExecutionArgs));
    },
  };
}

function compile(args: ExecutionArgs): Compiled | null {
  const operation = getOperationAST(args.document, args.operationName);
  if (!operation || operation.operation === "subscription") return null;
  const result = compileQuery(args.schema, args.document, args.operationName ?? undefined);
  return isCompiledQuery(result) ? { operation, query: result.query } : null;
}

async function execute(entry: Compiled, args: ExecutionArgs): Promise<ExecutionResult> {
  const coerced = getVariableValues(args.schema, entry.operation.variableDefinitions ?? [], args.variableValues ?? {}, { maxErrors: 50 });
  if (coerced.errors) return { errors: coerced.errors.map(asRequestError) };
  const result = await entry.query(args.rootValue, args.contextValue, args.variableValues);
  if (!result.errors || result.errors.length === 0) return result;
  return { ...result, errors: result.errors.map((error) => asGraphQLError(entry, args.document, error)) };
}

/** A variable that does not coerce is the request's fault: 400, as Yoga's executor (@graphql-tools/executor) marks it. */
function asRequestError(error: GraphQLError): GraphQLError {
  Object.defineProperty(error, "extensions", { value: { ...error.extensions, http: { ...(error.extensions.http ?? {}), status: 400 } } });
  return error;
}

/**
 * graphql-jit's error as graphql-js' locatedError would have it: the field's node, the path, the
 * resolver's own error. Its own error class passes `instanceof GraphQLError` but carries locations
 * without nodes, which masking (it rebuilds errors from their nodes) would drop.
 */
function asGraphQLError(entry: Compiled, document: DocumentNode, error: GraphQLError): GraphQLError {
  const at = error.locations?.[0];
  if (error.nodes !== undefined || at === undefined) return error;
  const node = at ? fieldsOf(entry, document).get(`${at.line}:${at.column}`) : undefined;
  return new GraphQLError(error.message, { nodes: node, path: error.path, originalError: error.originalError ?? undefined });
}

function fieldsOf(entry: Compiled, document: DocumentNode): Map<string, FieldNode> {
  if (entry.fields) return entry.fields;
  const fields = new Map<string, FieldNode>();
  visit(document, {
    [Kind.FIELD]: (node: FieldNode) => {
      if (!node.loc) return;
      const { line, column } = node.loc.source.locationOffset;
      const location = locationOf(node.loc.source.body, node.loc.start, line, column);
      fields.set(`${location.line}:${location.column}`, node);
    },
  });
  return (entry.fields = fields);
}

/** The 1-based line and column of `offset`, as graphql-js' getLocation counts them. */
function locationOf(body: string, offset: number, firstLine: number, firstColumn: number): { line: number; column: number } {
  let line = firstLine;
  let lineStart = 0;
  for (let i = 0; i < offset; i += 1) {
    if (body[i] === "\n") {
      line += 1;
      lineStart = i + 1;
    }
  }
  return { line, column: offset - lineStart + (line === firstLine ? firstColumn : 1) };
}
