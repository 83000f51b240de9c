import { GraphQLError } from "graphql";

/**
 * The one documented set of error codes (`extensions.code`). Anything that is
 * not an AppError reaches clients as INTERNAL_SERVER_ERROR with a fixed message.
 */
export const ErrorCode = {
  UNAUTHENTICATED: "UNAUTHENTICATED",
  NOT_FOUND: "NOT_FOUND",
  BAD_USER_INPUT: "BAD_USER_INPUT",
  ASSISTANT_UNAVAILABLE: "ASSISTANT_UNAVAILABLE",
  /** A chat turn ended at a bound; the payload still carries what was persisted. */
  ASSISTANT_STEP_LIMIT: "ASSISTANT_STEP_LIMIT",
  ASSISTANT_TIMEOUT: "ASSISTANT_TIMEOUT",
  ASSISTANT_REPEATED_TOOL_CALL: "ASSISTANT_REPEATED_TOOL_CALL",
  /** A model step asked for more tool calls than CHAT_MAX_TOOL_CALLS_PER_STEP: none of them ran. */
  ASSISTANT_TOO_MANY_TOOL_CALLS: "ASSISTANT_TOO_MANY_TOOL_CALLS",
  /** The answer was longer than CHAT_MAX_ANSWER_CHARS: the reply is what fitted, with a marker. */
  ASSISTANT_ANSWER_TOO_LONG: "ASSISTANT_ANSWER_TOO_LONG",
  /**
   * A decision on a held tool call that no longer applies: the call was decided the other way, its approval
   * expired, its turn was cancelled or replaced, or its arguments are not the ones shown. Nothing was changed.
   */
  STALE_DECISION: "STALE_DECISION",
  /** A turn waited for the user's approval longer than CHAT_APPROVAL_TTL: nothing held ran, and its reply says so. */
  APPROVAL_EXPIRED: "APPROVAL_EXPIRED",
  /** The database cannot be reached right now (or the pool is exhausted): retry shortly. HTTP 503. */
  SERVICE_UNAVAILABLE: "SERVICE_UNAVAILABLE",
  /** Too many requests for now; `extensions.retryAfter` says how many seconds to wait. */
  RATE_LIMITED: "RATE_LIMITED",
  /** The change would overwrite something changed since (undoTurn: `extensions.taskIds`); nothing was changed. */
  CONFLICT: "CONFLICT",
  /** undoTurn of a turn that was already undone. */
  ALREADY_UNDONE: "ALREADY_UNDONE",
  /** undoTurn of a turn that is still running. */
  TURN_RUNNING: "TURN_RUNNING",
  /** A subscriber fell too far behind and its subscription was ended: subscribe again (messageAdded: with afterSeq). */
  SUBSCRIPTION_OVERFLOW: "SUBSCRIPTION_OVERFLOW",
  /** A request named a trusted document (extensions.persistedQuery.sha256Hash or documentId) this server does not know. HTTP 404. */
  PERSISTED_QUERY_NOT_FOUND: "PERSISTED_QUERY_NOT_FOUND",
  /** ALLOW_ARBITRARY_OPERATIONS=false and the request's document is not a trusted one. HTTP 400. */
  PERSISTED_QUERY_REQUIRED: "PERSISTED_QUERY_REQUIRED",
  INTERNAL_SERVER_ERROR: "INTERNAL_SERVER_ERROR",
} as const;
export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];

export interface AppErrorOptions {
  /** The input field at fault, as the client spelled it (e.g. "input.title"). */
  field?: string;
  extensions?: Record<string, unknown>;
  cause?: unknown;
}

/** An expected failure whose message is safe to show to the client. */
export class AppError extends Error {
  override name = "AppError";
  readonly code: ErrorCode;
  readonly field: string | undefined;
  readonly extensions: Record<string, unknown>;

  constructor(code: ErrorCode, message: string, options: AppErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.field = options.field;
    this.extensions = options.extensions ?? {};
  }
}

/** The same answer for "does not exist" and "belongs to someone else", so existence is never revealed. */
export function notFound(what: string): AppError {
  return new AppError(ErrorCode.NOT_FOUND, `${what} not found`);
}

export function badInput(field: string, reason: string): AppError {
  return new AppError(ErrorCode.BAD_USER_INPUT, `${field}: ${reason}`, { field });
}

export function unauthenticated(reason: string): AppError {
  return new AppError(ErrorCode.UNAUTHENTICATED, reason);
}

/** `retryAfterSeconds`: whole seconds (at least 1) until a retry can succeed. */
export function rateLimited(what: string, retryAfterSeconds: number): AppError {
  const seconds = Math.max(1, Math.ceil(retryAfterSeconds));
  return new AppError(ErrorCode.RATE_LIMITED, `${what}: try again in ${seconds} second${seconds === 1 ? "" : "s"}`, {
    extensions: { retryAfter: seconds },
  });
}

export function toGraphQLError(error: AppError, base?: GraphQLError, extra: Record<string, unknown> = {}): GraphQLError {
  return new GraphQLError(error.message, {
    nodes: base?.nodes,
    source: base?.source,
    positions: base?.positions,
    path: base?.path,
    extensions: {
      ...error.extensions,
      code: error.code,
      ...(error.field === undefined ? {} : { field: error.field }),
      ...extra,
    },
  });
}
