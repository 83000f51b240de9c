import { GraphQLError, type ExecutionResult, type GraphQLFormattedError } from "graphql";
import type { FormattedExecutionResult } from "graphql-ws";

/** The app's maskError (src/mask-error.ts): what Yoga applies to every error it answers over HTTP. */
export type MaskError = (error: unknown) => Error;

/**
 * An error graphql-ws answers itself (parse and validation errors, a refused
 * operation, a subscription that throws), in the shape HTTP gives it: masked
 * the same way, and without `extensions.http`.
 */
export function formatError(maskError: MaskError, error: unknown): GraphQLFormattedError {
  const masked = maskError(error);
  if (!(masked instanceof GraphQLError)) return { message: masked.message };
  return withoutHttp(masked.toJSON());
}

/**
 * `extensions.http` (a status and headers, e.g. 503 and Retry-After) is meant
 * for an HTTP response, and Yoga strips it from HTTP answers; over a
 * WebSocket it would reach the client as is. The error's code and
 * `retryable` carry the same meaning.
 */
export function withoutHttpExtensions(result: ExecutionResult): FormattedExecutionResult | undefined {
  if (!result.errors?.some((error) => error.extensions?.http !== undefined)) return undefined;
  return { ...result, errors: result.errors.map((error) => withoutHttp(error.toJSON())) };
}

function withoutHttp(error: GraphQLFormattedError): GraphQLFormattedError {
  if (error.extensions?.http === undefined) return error;
  const { http: _http, ...extensions } = error.extensions;
  return { ...error, extensions };
}
