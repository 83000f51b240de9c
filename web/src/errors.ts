import type { CombinedError } from "urql";

/** A client-facing sentence for an operation's error: the server's message for typed errors, a hint for network ones. */
export function describeError(error: CombinedError): string {
  const first = error.graphQLErrors[0];
  if (first) return first.message;
  return "Cannot reach the server; check your connection and try again.";
}

export function errorCode(error: CombinedError | undefined): string | undefined {
  const code = error?.graphQLErrors[0]?.extensions.code;
  return typeof code === "string" ? code : undefined;
}
