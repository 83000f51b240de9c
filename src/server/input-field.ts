import { BREAK, GraphQLError, Kind, visit, type ASTNode, type DocumentNode, type ValueNode } from "graphql";

/**
 * The input field (`extensions.field`) of a value that did not coerce, for the
 * errors graphql-js raises itself: a scalar's parseValue / parseLiteral (e.g.
 * a DateTime without an offset) or an enum is never told where its value is,
 * so its error names no field, unlike every badInput a resolver throws.
 */

const VARIABLE = /^Variable "\$([_A-Za-z][_0-9A-Za-z]*)" got invalid value /;

/**
 * Where a variable's bad value sits in the request's variables ("input.dueAt",
 * "input.labels[1]", or the variable itself): the path graphql-js, and Yoga's
 * executor, print in the message and nowhere else, `Variable "$input" got
 * invalid value … at "input.dueAt"; <the scalar's own message>`. The variable's
 * path, not the argument's: one variable may fill several arguments.
 */
export function variableErrorField(error: GraphQLError): string | undefined {
  const cause = error.originalError;
  if (!(cause instanceof GraphQLError) || !error.message.endsWith(`; ${cause.message}`)) return undefined;
  const prefix = error.message.slice(0, error.message.length - cause.message.length - 2);
  const variable = VARIABLE.exec(prefix)?.[1];
  if (variable === undefined) return undefined;
  // Anchored on the variable's name, after the printed value: a string value is JSON, so any quote in it is escaped.
  const at = new RegExp(` at "(${variable}(?:\\.[_0-9A-Za-z]+|\\[\\d+\\])+)"$`).exec(prefix)?.[1];
  return at ?? variable;
}

/** The value nodes whose error is about that value itself (not the shape of an object or list around it). */
const LEAF_VALUES: ReadonlySet<string> = new Set([Kind.STRING, Kind.INT, Kind.FLOAT, Kind.BOOLEAN, Kind.ENUM, Kind.NULL]);

/**
 * Where a literal's bad value is in the document, spelled as a variable's
 * path would be: the argument, then its object fields and list indices
 * ("input.dueAt", "filter.dueBefore"). Undefined when the error is not about
 * one value written in an argument.
 */
export function literalErrorField(document: DocumentNode, error: GraphQLError): string | undefined {
  const target = error.nodes?.length === 1 ? error.nodes[0] : undefined;
  if (target === undefined || !LEAF_VALUES.has(target.kind)) return undefined;
  let field: string | undefined;
  visit(document, {
    [Kind.ARGUMENT]: (argument) => {
      field = pathTo(argument.value, target, argument.name.value);
      return field === undefined ? undefined : BREAK;
    },
  });
  return field;
}

function pathTo(value: ValueNode, target: ASTNode, at: string): string | undefined {
  if (value === target) return at;
  if (value.kind === Kind.OBJECT) {
    for (const field of value.fields) {
      const found = pathTo(field.value, target, `${at}.${field.name.value}`);
      if (found !== undefined) return found;
    }
  }
  if (value.kind === Kind.LIST) {
    for (const [index, item] of value.values.entries()) {
      const found = pathTo(item, target, `${at}[${index}]`);
      if (found !== undefined) return found;
    }
  }
  return undefined;
}
