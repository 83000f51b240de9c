import { pino, type Logger } from "pino";
import { currentRequestId } from "./request-context.js";

export type { Logger };

/**
 * Anything that could carry a credential is censored by path, so a token or
 * key cannot reach the logs even when a whole request or config is logged.
 */
export const REDACT_PATHS = [
  "authorization",
  "headers.authorization",
  "req.headers.authorization",
  "request.headers.authorization",
  "connectionParams.authorization",
  "token",
  "*.token",
  "apiKey",
  "*.apiKey",
  "jwtSecret",
  "*.jwtSecret",
  "password",
  "*.password",
  "url",
  "*.url",
  "directUrl",
  "*.directUrl",
];

export function createLogger(level: string, destination?: pino.DestinationStream): Logger {
  return pino(
    {
      level,
      redact: { paths: REDACT_PATHS, censor: "[redacted]" },
      base: undefined,
      // Every line logged while serving a request carries its id.
      mixin: () => {
        const requestId = currentRequestId();
        return requestId === undefined ? {} : { requestId };
      },
    },
    destination,
  );
}
