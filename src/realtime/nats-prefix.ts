// NATS_SUBJECT_PREFIX's rule, apart from ./nats-subjects.ts: the configuration checks it at
// the very start, and must not load the NATS client to do so (it loads only under
// REALTIME_TRANSPORT=nats).

/** A subject token as NATS allows it, without wildcards. */
const TOKEN = /^[A-Za-z0-9_-]+$/;

/** Why a subject prefix is not usable, or undefined when it is. */
export function prefixProblem(prefix: string): string | undefined {
  if (prefix.length > 100) return "at most 100 characters";
  const tokens = prefix.split(".");
  if (tokens.some((token) => !TOKEN.test(token))) return "dot-separated tokens of letters, digits, _ and - (no wildcards or spaces)";
  return undefined;
}
