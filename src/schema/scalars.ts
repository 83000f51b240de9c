import { GraphQLError, Kind, type ValueNode } from "graphql";
import { builder } from "./builder.js";

/** RFC 3339's date-time: a date, a time, and Z or a numeric offset (what makes it one instant). */
const DATE_TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?<offset>Z|[+-]\d{2}:?\d{2})?$/i;

/**
 * An instant, so it must say which: a date-time without an offset is a wall
 * time, and reading it in the server's zone (what Date does) would make the
 * same request mean different instants on different hosts. It is refused,
 * with what to add; the viewer's zone (viewer.timezone) is the client's to
 * apply. The assistant's tools, which take local times, read them in the
 * user's zone instead (chat/tools.ts).
 */
function parseDateTime(value: unknown, node?: ValueNode): Date {
  const match = typeof value === "string" ? DATE_TIME.exec(value) : null;
  if (typeof value === "string" && match && match.groups?.offset === undefined) {
    throw invalid(`DateTime needs an offset, e.g. Z or +01:00 ("${value.slice(0, 40)}" has none)`, node);
  }
  const date = match ? new Date(value as string) : undefined;
  if (date === undefined || Number.isNaN(date.getTime())) {
    throw invalid("DateTime must be an ISO 8601 date-time string with an offset, e.g. 2026-01-31T12:00:00Z", node);
  }
  return date;
}

function invalid(message: string, node: ValueNode | undefined): GraphQLError {
  return new GraphQLError(message, { ...(node ? { nodes: node } : {}), extensions: { code: "BAD_USER_INPUT" } });
}

builder.scalarType("DateTime", {
  description:
    "An instant in time, as an ISO 8601 string in UTC (e.g. 2026-01-31T12:00:00.000Z). Input takes any offset (Z, +01:00) and refuses a date-time without one.",
  serialize: (value) => value.toISOString(),
  parseValue: (value) => parseDateTime(value),
  parseLiteral: (ast) => {
    if (ast.kind !== Kind.STRING) {
      throw invalid("DateTime must be a string", ast);
    }
    return parseDateTime(ast.value, ast);
  },
});

builder.scalarType("JSON", {
  description: "Any JSON value.",
  serialize: (value) => value,
  parseValue: (value) => value,
});
