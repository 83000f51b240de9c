import {
  getArgumentValues,
  getNamedType,
  GraphQLError,
  Kind,
  TypeInfo,
  visit,
  visitWithTypeInfo,
  type DocumentNode,
  type FieldNode,
  type GraphQLField,
  type GraphQLSchema,
} from "graphql";
import type { Plugin } from "graphql-yoga";
import { ErrorCode } from "../lib/errors.js";
import { isTaskCursor } from "../domain/task-order.js";
import { isValidCursor } from "../lib/ids.js";

export const MAX_PAGE_SIZE = 100;

/**
 * Checks every connection's first/last/after/before, nested ones included,
 * before execution starts. Pothos decodes a nested connection's cursor while
 * planning its parent's SQL, so a per-field check would come too late, and its
 * own errors do not say which argument was wrong.
 */
export function connectionArgsProblems(
  schema: GraphQLSchema,
  document: DocumentNode,
  variables: Record<string, unknown> | undefined,
): GraphQLError[] {
  const problems: GraphQLError[] = [];
  for (const { field, node } of connectionFields(schema, document)) {
    let args: Record<string, unknown>;
    try {
      args = getArgumentValues(field, node, variables ?? {});
    } catch {
      continue; // Variable coercion errors are reported by execution itself.
    }
    const where = `${field.name}(…)`;
    for (const name of ["first", "last"] as const) {
      const value = args[name];
      if (typeof value === "number" && (value < 0 || value > MAX_PAGE_SIZE)) {
        problems.push(problem(node, name, `${where} ${name} must be between 0 and ${MAX_PAGE_SIZE} (got ${value})`));
      }
    }
    for (const name of ["after", "before"] as const) {
      const value = args[name];
      if (typeof value === "string" && !cursorCheck(field)(value)) {
        problems.push(problem(node, name, `${where} ${name} is not a cursor from this connection`));
      }
    }
  }
  return problems;
}

/**
 * The cursor shape of a connection: Pothos' (GPC:) for the Prisma connections,
 * the keyset cursor of domain/task-order.ts for the task list (its resolver
 * checks that it is of the order asked for).
 */
function cursorCheck(field: GraphQLField<unknown, unknown>): (cursor: string) => boolean {
  return getNamedType(field.type).name === "TaskConnection" ? isTaskCursor : isValidCursor;
}

interface ConnectionField {
  field: GraphQLField<unknown, unknown>;
  node: FieldNode;
}

/**
 * The connection fields of a document, found once per document: Yoga's parse cache hands the
 * same DocumentNode to every request with the same text, and walking it with TypeInfo on every
 * request was a visible share of a request's CPU (BENCHMARKS.md, B1 profile). Only the
 * variables differ between requests, so only the argument values are read each time.
 */
const fieldsBySchema = new WeakMap<GraphQLSchema, WeakMap<DocumentNode, ConnectionField[]>>();

function connectionFields(schema: GraphQLSchema, document: DocumentNode): ConnectionField[] {
  let byDocument = fieldsBySchema.get(schema);
  if (!byDocument) {
    byDocument = new WeakMap();
    fieldsBySchema.set(schema, byDocument);
  }
  const known = byDocument.get(document);
  if (known) return known;
  const found: ConnectionField[] = [];
  const typeInfo = new TypeInfo(schema);
  visit(
    document,
    visitWithTypeInfo(typeInfo, {
      Field(node) {
        const field = typeInfo.getFieldDef();
        if (field && getNamedType(field.type).name.endsWith("Connection")) found.push({ field, node });
      },
    }),
  );
  byDocument.set(document, found);
  return found;
}

function problem(node: { kind: Kind.FIELD }, field: string, message: string): GraphQLError {
  return new GraphQLError(message, { nodes: [node as never], extensions: { code: ErrorCode.BAD_USER_INPUT, field } });
}

export function useConnectionArgsGuard(): Plugin {
  return {
    onExecute({ args, setResultAndStopExecution }) {
      const problems = connectionArgsProblems(args.schema, args.document, args.variableValues ?? undefined);
      if (problems.length > 0) setResultAndStopExecution({ errors: problems });
    },
    onSubscribe({ args, setResultAndStopExecution }) {
      const problems = connectionArgsProblems(args.schema, args.document, args.variableValues ?? undefined);
      if (problems.length > 0) setResultAndStopExecution({ errors: problems });
    },
  };
}
