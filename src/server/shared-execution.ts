import { setTimeout as sleep } from "node:timers/promises";
import { createSourceEventStream, execute, type DocumentNode, type ExecutionArgs, type ExecutionResult } from "graphql";
import { isAsyncIterable, mapAsyncIterator, type Plugin } from "graphql-yoga";
import { Backoff, type BackoffPolicy } from "../lib/backoff.js";
import { isDatabaseUnavailable } from "../db/unavailable.js";
import type { Context } from "../schema/context.js";
import { StreamEnd } from "../realtime/subscriber.js";

/**
 * One execution per event and distinct selection, not one per subscriber
 * (Hasura's "multiplexing"). The feeds hand the very same event object to
 * every subscriber of a user, so the result of executing a selection on it
 * can be shared: it is kept on the event (a WeakMap, so it goes when the event
 * does), keyed by the document, operation, variables and user. A thousand
 * sockets of one user with the same subscription cost one execution per event;
 * a Message's `conversation { id }` is loaded once, not a thousand times.
 *
 * Subscriptions run as graphql-js runs them (the source stream from the
 * field's subscribe, each event executed with it as the root value); only the
 * per-event execution is shared. Results are never mutated downstream: the
 * masking plugin maps errors into a new result, graphql-ws and SSE serialise.
 */
export function useSharedSubscriptionExecution(): Plugin<Context> {
  return {
    onSubscribe({ setSubscribeFn }) {
      setSubscribeFn(subscribeShared as never);
    },
  };
}

const documentIds = new WeakMap<DocumentNode, number>();
let lastDocumentId = 0;
const resultsByEvent = new WeakMap<object, Map<string, ExecutionResult | Promise<ExecutionResult>>>();

async function subscribeShared(args: ExecutionArgs): Promise<AsyncIterable<ExecutionResult> | ExecutionResult> {
  const source = await createSourceEventStream(args);
  if (!isAsyncIterable(source)) return source as ExecutionResult;
  const key = selectionKey(args);
  return mapAsyncIterator(source as AsyncIterable<unknown>, (event) => executeShared(args, event, key));
}

function executeShared(args: ExecutionArgs, event: unknown, key: string): ExecutionResult | Promise<ExecutionResult> {
  // A stream's own ending (StreamEnd) and non-objects are one subscriber's: nothing to share.
  if (typeof event !== "object" || event === null || event instanceof StreamEnd) return execute({ ...args, rootValue: event });
  let results = resultsByEvent.get(event);
  if (!results) {
    results = new Map();
    resultsByEvent.set(event, results);
  }
  let result = results.get(key);
  if (result === undefined) {
    result = executeUntilReachable({ ...args, rootValue: event });
    results.set(key, result);
  }
  return result;
}

/** How long an event's execution is retried while the database cannot be reached, before its error goes out. */
const UNREACHABLE_RETRY_MS = 60_000;
const UNREACHABLE_BACKOFF: BackoffPolicy = { initialMs: 100, maxMs: 2000 };

/**
 * Executes the selection on an event; when a field of it (a Message's
 * `conversation`, say) could not be read because the database is away, tries
 * again with backoff instead of sending the error. The event itself was
 * committed and read: sending an error in its place would be a gap in the
 * feed that nothing fills later. Later events of the stream wait behind it,
 * so the order holds.
 */
function executeUntilReachable(args: ExecutionArgs): ExecutionResult | Promise<ExecutionResult> {
  const first = execute(args);
  if (!(first instanceof Promise) && !unreachable(first)) return first;
  return (async () => {
    let result = await first;
    const backoff = new Backoff(UNREACHABLE_BACKOFF);
    const until = performance.now() + UNREACHABLE_RETRY_MS;
    while (unreachable(result) && performance.now() < until) {
      await sleep(backoff.next());
      result = await execute(args);
    }
    return result;
  })();
}

function unreachable(result: ExecutionResult): boolean {
  return result.errors?.some((error) => isDatabaseUnavailable(error.originalError)) ?? false;
}

/** What decides the result besides the event: the selection, its variables and whose it is. */
function selectionKey(args: ExecutionArgs): string {
  let documentId = documentIds.get(args.document);
  if (documentId === undefined) {
    lastDocumentId += 1;
    documentId = lastDocumentId;
    documentIds.set(args.document, documentId);
  }
  const userId = (args.contextValue as Partial<Context> | undefined)?.viewer?.userId ?? "";
  return JSON.stringify([documentId, args.operationName ?? null, args.variableValues ?? null, userId]);
}
