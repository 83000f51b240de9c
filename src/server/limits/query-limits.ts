import { maxAliasesPlugin } from "@escape.tech/graphql-armor-max-aliases";
import { maxDepthPlugin } from "@escape.tech/graphql-armor-max-depth";
import { maxDirectivesPlugin } from "@escape.tech/graphql-armor-max-directives";
import { maxTokensPlugin } from "@escape.tech/graphql-armor-max-tokens";
import { GraphQLError, NoSchemaIntrospectionCustomRule, type ValidationContext } from "graphql";
import type { Plugin } from "graphql-yoga";
import { ErrorCode } from "../../lib/errors.js";
import { operationCost } from "./query-cost.js";
import type { QueryLimits } from "./query-limit-defaults.js";

/**
 * Limits a document must pass before anything runs: tokens while parsing
 * (so a huge document is not even parsed whole), then depth, aliases and
 * directives as validation rules (GraphQL Armor), then the cost with the
 * request's variables, since page sizes often come in variables. Every
 * refusal is BAD_USER_INPUT naming the limit, its value and its setting.
 */
export function useQueryLimits(limits: QueryLimits): Plugin[] {
  return [
    maxTokensPlugin({ n: limits.tokens }) as Plugin,
    maxDepthPlugin({ n: limits.depth, propagateOnRejection: false, onReject: [reportAs("GRAPHQL_MAX_DEPTH")] }) as Plugin,
    maxAliasesPlugin({ n: limits.aliases, propagateOnRejection: false, onReject: [reportAs("GRAPHQL_MAX_ALIASES")] }) as Plugin,
    maxDirectivesPlugin({ n: limits.directives, propagateOnRejection: false, onReject: [reportAs("GRAPHQL_MAX_DIRECTIVES")] }) as Plugin,
    useCostLimit(limits.cost),
  ];
}

/** Armor's messages start with "Syntax Error:", which these are not; the rest names the limit and what was found. */
function reportAs(setting: string) {
  return (context: ValidationContext | null, error: GraphQLError): void => {
    const message = `${error.message.replace(/^Syntax Error:\s*/, "").replace(/\.$/, "")} (${setting})`;
    context?.reportError(new GraphQLError(message, { extensions: { code: ErrorCode.BAD_USER_INPUT, limit: setting } }));
  };
}

export function useCostLimit(maxCost: number): Plugin {
  const check = (args: {
    schema: Parameters<typeof operationCost>[0];
    document: Parameters<typeof operationCost>[1];
    operationName?: string | null;
    variableValues?: Record<string, unknown> | null;
  }) => {
    const cost = operationCost(args.schema, args.document, args.operationName, args.variableValues);
    if (cost <= maxCost) return undefined;
    return new GraphQLError(
      `Query cost ${cost} exceeds the limit of ${maxCost} (GRAPHQL_MAX_COST): nested page sizes multiply, so ask for smaller pages (first/last)`,
      { extensions: { code: ErrorCode.BAD_USER_INPUT, limit: "GRAPHQL_MAX_COST", cost } },
    );
  };
  return {
    onExecute({ args, setResultAndStopExecution }) {
      const error = check(args);
      if (error) setResultAndStopExecution({ errors: [error] });
    },
    onSubscribe({ args, setResultAndStopExecution }) {
      const error = check(args);
      if (error) setResultAndStopExecution({ errors: [error] });
    },
  };
}

/**
 * Refuses __schema and __type (not __typename) on every transport, WebSocket
 * included: Yoga's own plugin decides per HTTP request and never sees graphql-ws.
 */
export function useNoIntrospection(): Plugin {
  return {
    onValidate({ addValidationRule }) {
      addValidationRule(NoSchemaIntrospectionCustomRule);
    },
  };
}

const SUGGESTION = /\s*Did you mean [^?]*\?/g;

/** "Did you mean "tasks"?" maps the schema for whoever guesses; production drops it. The same error when it has none. */
export function withoutSuggestions(error: GraphQLError): GraphQLError {
  const message = error.message.replace(SUGGESTION, "").trim();
  if (message === error.message) return error;
  return new GraphQLError(message, {
    nodes: error.nodes,
    source: error.source,
    positions: error.positions,
    path: error.path,
    extensions: error.extensions,
  });
}
