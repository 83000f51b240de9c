import { setTimeout as sleep } from "node:timers/promises";
import type { Cohere, CohereClientV2, CohereError } from "cohere-ai";
import { backoffDelay, mayRetry, type BackoffPolicy } from "../lib/backoff.js";

export type ChatRequest = Cohere.V2ChatStreamRequest;
export type ChatStreamEvent = Cohere.V2ChatStreamResponse;

/**
 * The slice of the SDK the loop uses, so tests and alternative providers can
 * stand in. Every call streams: it resolves once the model has answered with
 * a success status (`timeoutMs` bounds that wait), and aborting `signal` ends
 * the events and closes the connection.
 */
export interface ChatModel {
  stream(request: ChatRequest, options: { timeoutMs: number; signal: AbortSignal }): Promise<AsyncIterable<ChatStreamEvent>>;
}

export interface CohereSettings {
  apiKey: string;
  /** COHERE_BASE_URL: a proxy, or a local fake in tests. */
  baseUrl?: string | undefined;
}

/**
 * The SDK, loaded by the first model call: it is one of the largest modules
 * of the server and no request but sendMessage needs it, so a start does not
 * pay for it. Until it is loaded no error can be one of its own.
 */
type CohereSdk = typeof import("cohere-ai");
let sdk: CohereSdk | undefined;
let loadingSdk: Promise<CohereSdk> | undefined;

function loadSdk(): Promise<CohereSdk> {
  loadingSdk ??= import("cohere-ai").then((module) => (sdk = commonJsExports(module)));
  // A failed load is tried again by the next call rather than remembered.
  loadingSdk.catch(() => (loadingSdk = undefined));
  return loadingSdk;
}

/**
 * The package is CommonJS, and how its exports arrive depends on who loads it: Node's loader
 * gives them named and as `default`, tsx named only, the dist/ bundle's chunk as `default` only.
 */
function commonJsExports(module: CohereSdk & { default?: CohereSdk }): CohereSdk {
  return module.CohereClientV2 === undefined && module.default !== undefined ? module.default : module;
}

/** The real SDK client. Retries are ours (they honour Retry-After and the turn's deadline), so the SDK's are off. */
export function createCohereModel(settings: CohereSettings): ChatModel {
  let client: CohereClientV2 | undefined;
  const clientOf = async (): Promise<CohereClientV2> => {
    const { CohereClientV2 } = await loadSdk();
    return (client ??= new CohereClientV2({
      token: settings.apiKey,
      ...(settings.baseUrl ? { environment: settings.baseUrl.replace(/\/+$/, "") } : {}),
      maxRetries: 0,
    }));
  };
  return {
    stream: async (request, { timeoutMs, signal }) =>
      (await clientOf()).chatStream(request, { timeoutInSeconds: timeoutMs / 1000, maxRetries: 0, abortSignal: signal }),
  };
}

function isCohereError(error: unknown): error is CohereError {
  return sdk !== undefined && error instanceof sdk.CohereError;
}

function isCohereTimeoutError(error: unknown): boolean {
  return sdk !== undefined && error instanceof sdk.CohereTimeoutError;
}

/** The model did not answer within the per-call or per-turn time limit. */
export class ModelTimeoutError extends Error {
  override name = "ModelTimeoutError";
}

/** The model could not be reached or kept failing; `retryAfterMs` is its own hint, when it gave one. */
export class ModelUnavailableError extends Error {
  override name = "ModelUnavailableError";
  constructor(
    message: string,
    readonly retryable: boolean,
    readonly retryAfterMs: number | undefined,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** Three retries after the first call, from about 250 ms apart, doubling, at most 8 s. */
export const DEFAULT_RETRY_POLICY: BackoffPolicy = { initialMs: 250, maxMs: 8000, maxRetries: 3 };

const RETRYABLE_STATUS = new Set([408, 429, 500, 502, 503, 504]);

function statusOf(error: unknown): number | undefined {
  return isCohereError(error) ? error.statusCode : undefined;
}

/** Retry-After as seconds or an HTTP date, in milliseconds. */
export function retryAfterMs(error: unknown, now: number = Date.now()): number | undefined {
  if (!isCohereError(error)) return undefined;
  const header = error.rawResponse?.headers?.get?.("retry-after");
  if (header === null || header === undefined || header === "") return undefined;
  const seconds = Number(header);
  if (Number.isFinite(seconds)) return Math.max(0, seconds * 1000);
  const date = Date.parse(header);
  return Number.isNaN(date) ? undefined : Math.max(0, date - now);
}

function isTimeout(error: unknown): boolean {
  // cohere-ai 8.x aborts a timed-out request with the string reason "timeout", which fetch
  // rethrows as is, so the SDK reports a status-less CohereError whose cause is "timeout"
  // rather than a CohereTimeoutError.
  return isCohereTimeoutError(error) || (isCohereError(error) && error.statusCode === undefined && error.cause === "timeout");
}

function isRetryable(error: unknown): boolean {
  const status = statusOf(error);
  if (status !== undefined) return RETRYABLE_STATUS.has(status);
  // No status: the request never got an HTTP answer (connection refused or reset).
  return isCohereError(error) || (error instanceof Error && !isCohereTimeoutError(error));
}

export interface CallOptions {
  timeoutMs: number;
  /** performance.now() value after which nothing more is attempted. */
  deadline: number;
  /** Stops the call and any wait between attempts; the signal's reason is thrown. */
  signal: AbortSignal;
  policy?: BackoffPolicy;
  onRetry?: (info: { attempt: number; delayMs: number; status: number | undefined }) => void;
}

/**
 * Opens one model stream with bounded retries: 429 and 5xx (and connection
 * failures) are retried with exponential backoff, or after Retry-After when
 * the server says so, as long as the wait fits before the turn's deadline.
 * Once events flow, a failure is the caller's (nothing can be taken back).
 */
export async function chatWithRetries(model: ChatModel, request: ChatRequest, options: CallOptions): Promise<AsyncIterable<ChatStreamEvent>> {
  const policy = options.policy ?? DEFAULT_RETRY_POLICY;
  const { signal } = options;
  for (let attempt = 0; ; attempt += 1) {
    signal.throwIfAborted();
    const remaining = options.deadline - performance.now();
    if (remaining <= 0) throw new ModelTimeoutError("the turn ran out of time");
    try {
      return await model.stream(request, { timeoutMs: Math.min(options.timeoutMs, remaining), signal });
    } catch (error) {
      // Stopped from outside (a cancel, the turn's clock): not the model's failure.
      signal.throwIfAborted();
      if (isTimeout(error)) throw new ModelTimeoutError("the model did not answer in time", { cause: error });
      const status = statusOf(error);
      const hint = retryAfterMs(error);
      if (!isRetryable(error)) {
        throw new ModelUnavailableError(`the model answered ${status ?? "with an error"}`, false, undefined, { cause: error });
      }
      if (!mayRetry(attempt, policy)) {
        throw new ModelUnavailableError(`the model kept failing (${status ?? "no response"})`, true, hint, { cause: error });
      }
      const delayMs = hint ?? backoffDelay(attempt, policy);
      if (performance.now() + delayMs >= options.deadline) {
        throw new ModelUnavailableError("the model asked to wait longer than this turn may take", true, hint, { cause: error });
      }
      options.onRetry?.({ attempt: attempt + 1, delayMs, status });
      await sleep(delayMs, undefined, { signal });
    }
  }
}
