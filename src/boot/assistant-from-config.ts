import type { Config } from "./config.js";
import type { Logger } from "../lib/logger.js";
import { createCohereModel } from "../chat/cohere.js";
import type { AssistantDeps } from "../chat/turn-run.js";

/**
 * The assistant as the environment configures it. One place, so that the
 * server (`src/main.ts`) and the processes the bench and soak start run the
 * same chat settings.
 */
export function assistantFromConfig(config: Config, logger: Logger): AssistantDeps {
  const { cohere, chat } = config;
  return {
    model: cohere.apiKey === undefined ? undefined : createCohereModel({ apiKey: cohere.apiKey, baseUrl: cohere.baseUrl }),
    modelName: cohere.model,
    maxSteps: cohere.maxSteps,
    callTimeoutMs: cohere.timeoutMs,
    turnTimeoutMs: cohere.turnTimeoutMs,
    clock: () => new Date(),
    logger,
    streamFlushMs: chat.streamFlushMs,
    maxInputTokens: cohere.maxInputTokens,
    maxToolCallsPerStep: chat.maxToolCallsPerStep,
    maxAnswerChars: chat.maxAnswerChars,
    approvalPolicy: chat.approval,
    approvalTtlMs: chat.approvalTtlSeconds * 1000,
    rateLimit: chat.rateLimitPerMinute === 0 ? undefined : { perMinute: chat.rateLimitPerMinute, burst: chat.rateBurst },
  };
}
