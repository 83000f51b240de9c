import { PothosValidationError } from "@pothos/core";
import { GraphQLError } from "graphql";
import { unavailableReason } from "../db/unavailable.js";
import { AppError, ErrorCode, toGraphQLError } from "../lib/errors.js";
import type { Plugin } from "graphql-yoga";
import type { Logger } from "../lib/logger.js";
import { literalErrorField, variableErrorField } from "./input-field.js";
import { withoutSuggestions } from "./limits/query-limits.js";

const MASKED_MESSAGE = "Unexpected error";

export interface MaskOptions {
  /** "Did you mean …?" hints; off in production, where they map the schema for whoever guesses. */
  suggestions: boolean;
}

/**
 * Yoga's maskError: expected errors keep their message and get their code;
 * anything else becomes INTERNAL_SERVER_ERROR with a fixed message, and the
 * original goes to the log only. No stack, SQL or Prisma text reaches a client.
 */
export function createMaskError(logger: Logger, options: MaskOptions = { suggestions: true }) {
  const mask = maskWith(logger);
  return (error: unknown): Error => {
    const masked = mask(error);
    return options.suggestions || !(masked instanceof GraphQLError) ? masked : withoutSuggestions(masked);
  };
}

function maskWith(logger: Logger) {
  return (error: unknown): Error => {
    const original = error instanceof GraphQLError ? (error.originalError ?? undefined) : error;
    const base = error instanceof GraphQLError ? error : undefined;

    if (original instanceof AppError) return toGraphQLError(original, base);
    if (base && isRequestError(base)) return asRequestError(base);
    if (original instanceof GraphQLError && original.extensions.code !== undefined) return original;
    if (original instanceof PothosValidationError) {
      return toGraphQLError(new AppError(ErrorCode.BAD_USER_INPUT, original.message), base);
    }
    const unavailable = unavailableReason(original ?? error);
    if (unavailable !== undefined) {
      // Retryable and not a bug (an outage, a statement timeout, no file descriptor left): a warning, not an error.
      logger.warn({ err: original ?? error, path: base?.path, reason: unavailable }, "database unavailable");
      return toGraphQLError(serviceUnavailable(), base, { http: { status: 503, headers: { "retry-after": "1" } } });
    }

    logger.error({ err: original ?? error, path: base?.path }, "unexpected error in a GraphQL operation");
    return new GraphQLError(MASKED_MESSAGE, {
      nodes: base?.nodes,
      source: base?.source,
      positions: base?.positions,
      path: base?.path,
      extensions: { code: ErrorCode.INTERNAL_SERVER_ERROR },
    });
  };
}

/**
 * graphql-js' own request errors (parse, variable coercion) and Yoga's
 * (GRAPHQL_PARSE_FAILED, BAD_REQUEST…): the client's fault, in the contract's
 * code, and a variable that did not coerce names its field, as badInput does.
 */
function asRequestError(error: GraphQLError): GraphQLError {
  const code = isContractCode(error.extensions.code) ? error.extensions.code : ErrorCode.BAD_USER_INPUT;
  const field = error.extensions.field ?? variableErrorField(error);
  if (code === error.extensions.code && field === error.extensions.field) return error;
  return new GraphQLError(error.message, {
    nodes: error.nodes,
    source: error.source,
    positions: error.positions,
    path: error.path,
    extensions: { ...error.extensions, code, ...(field === undefined ? {} : { field }) },
  });
}

/**
 * The code a client gets for `error` once masked, worked out as maskError does
 * but without logging or building anything: the metrics' error label.
 */
export function maskedCode(error: unknown): string {
  const original = error instanceof GraphQLError ? (error.originalError ?? undefined) : error;
  const base = error instanceof GraphQLError ? error : undefined;
  if (original instanceof AppError) return original.code;
  if (base && isRequestError(base)) return isContractCode(base.extensions.code) ? String(base.extensions.code) : ErrorCode.BAD_USER_INPUT;
  if (original instanceof GraphQLError && typeof original.extensions.code === "string") return original.extensions.code;
  if (original instanceof PothosValidationError) return ErrorCode.BAD_USER_INPUT;
  if (unavailableReason(original ?? error) !== undefined) return ErrorCode.SERVICE_UNAVAILABLE;
  return ErrorCode.INTERNAL_SERVER_ERROR;
}

/** The answer when the database cannot be reached: retryable, and naming nothing internal. */
export function serviceUnavailable(): AppError {
  return new AppError(ErrorCode.SERVICE_UNAVAILABLE, "The service is temporarily unavailable; retry shortly", {
    extensions: { retryable: true },
  });
}

const CONTRACT_CODES: ReadonlySet<unknown> = new Set(Object.values(ErrorCode));

function isContractCode(code: unknown): boolean {
  return CONTRACT_CODES.has(code);
}

/**
 * An error about the request itself rather than a field: it has no path, and
 * its cause chain holds nothing but GraphQLErrors (a variable coercion error
 * wraps the scalar's own GraphQLError). Anything a resolver throws has a path.
 */
function isRequestError(error: GraphQLError): boolean {
  if (error.path !== undefined) return false;
  let cause: unknown = error.originalError;
  while (cause !== undefined && cause !== null) {
    if (!(cause instanceof GraphQLError)) return false;
    cause = cause.originalError;
  }
  return true;
}

/**
 * Validation errors never reach maskError, and Yoga labels them
 * GRAPHQL_VALIDATION_FAILED; the contract's code for a bad document is BAD_USER_INPUT.
 * A literal that did not coerce names its field, as a variable's error does.
 */
export function useValidationErrorCode(options: MaskOptions = { suggestions: true }): Plugin {
  return {
    onValidate({ params }) {
      return ({ valid, result, setResult }) => {
        if (valid) return;
        for (const error of result) {
          error.extensions.code = ErrorCode.BAD_USER_INPUT;
          const field = error.extensions.field ?? literalErrorField(params.documentAST, error);
          if (field !== undefined) error.extensions.field = field;
        }
        if (!options.suggestions) setResult(result.map((error) => (error instanceof GraphQLError ? withoutSuggestions(error) : error)));
      };
    },
  };
}
