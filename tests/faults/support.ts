import type { GraphQLResponse } from "../helpers/server.js";

/** Shared pieces of the fault tests: what a client may see while something is broken, and a load loop. */

/** Text that would mean an internal detail reached a client. */
export const INTERNALS =
  /prisma|P1001|P1017|P2024|57P01|ECONNREFUSED|ECONNRESET|127\.0\.0\.1|invocation|\bat .+:\d+:\d+|terminating connection|timeout exceeded|pg_|SELECT |INSERT |UPDATE /i;

/**
 * The one failure a request may meet while the database is away: 503,
 * SERVICE_UNAVAILABLE, retryable, and nothing internal. Returns a description
 * of what is wrong instead, so a load loop can collect every violation.
 */
export function unavailableViolation(response: GraphQLResponse<unknown>): string | undefined {
  const text = JSON.stringify(response);
  if (INTERNALS.test(text)) return `internal detail in ${text}`;
  if (response.status !== 503) return `status ${response.status}: ${text}`;
  const errors = response.errors ?? [];
  if (errors.length === 0) return `503 without errors: ${text}`;
  for (const error of errors) {
    if (error.extensions?.code !== "SERVICE_UNAVAILABLE" || error.extensions.retryable !== true) return `not SERVICE_UNAVAILABLE: ${text}`;
  }
  return undefined;
}

/** Counts of one kind of request under load. */
export interface Tally {
  attempts: number;
  ok: number;
  unavailable: number;
  /** Anything else: each one fails the test. */
  violations: string[];
}

export function tally(): Tally {
  return { attempts: 0, ok: 0, unavailable: 0, violations: [] };
}

/** Records one answer: a success, an allowed SERVICE_UNAVAILABLE, or a violation. Returns whether it succeeded. */
export function record(into: Tally, response: GraphQLResponse<unknown>): boolean {
  into.attempts += 1;
  if (response.status === 200 && response.errors === undefined) {
    into.ok += 1;
    return true;
  }
  const violation = unavailableViolation(response);
  if (violation === undefined) into.unavailable += 1;
  else into.violations.push(violation);
  return false;
}
