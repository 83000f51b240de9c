import type { IncomingMessage, ServerResponse } from "node:http";
import { sendNodeResponse } from "@whatwg-node/server";
import type { YogaServerInstance } from "graphql-yoga";
import type { Logger } from "../lib/logger.js";
import { requestContext, requestIdFrom } from "../lib/request-context.js";
import type { Context } from "../schema/context.js";
import { ErrorCode } from "../lib/errors.js";
import type { Drain } from "./drain.js";
import { errorResponse } from "./responses.js";
import { internalError } from "./routes.js";

export interface RequestServerContext extends Record<string, unknown> {
  req: IncomingMessage;
  res: ServerResponse;
  startedAt: number;
}

/**
 * The node:http listener: every request, whatever its route, goes through
 * Yoga's one pipeline (routes, CORS, auth, limits, masking, access log)
 * under its request id. This is also the error boundary: the server
 * adapter's own fallback answers a throw with the stack trace, and a sync
 * throw (a malformed Host header) would escape it; here either becomes a
 * masked 500 and a log line, and the process stays up.
 */
export function createFrontDoor(yoga: YogaServerInstance<Record<string, unknown>, Context>, logger: Logger, drain: Drain) {
  return (req: IncomingMessage, res: ServerResponse): void => {
    const requestId = requestIdFrom(req.headers["x-request-id"]);
    res.setHeader("x-request-id", requestId);
    const onConnection = drain.track(req, res);
    const refused = refusal(drain, req, onConnection);
    requestContext.run({ requestId }, () => void serve(yoga, logger, req, res, refused));
  };
}

/**
 * HTTP/1.1 pipelining: requests a client sends on one connection without
 * waiting for the answers. Node parses and hands over every one at once, so
 * without a bound one connection could start thousands of operations. Past
 * this many in flight on a connection, a request is refused (503, retryable)
 * without running, and the connection closes once the answers before it are out.
 */
export const MAX_PIPELINED_REQUESTS = 32;

/** Why a request is refused without running, if it is. */
function refusal(drain: Drain, req: IncomingMessage, onConnection: number): string | undefined {
  if (drain.draining && !isLiveness(req)) return "The server is shutting down; retry shortly";
  if (onConnection > MAX_PIPELINED_REQUESTS) {
    return `More than ${MAX_PIPELINED_REQUESTS} requests in flight on one connection; send the rest on a new connection once these are answered`;
  }
  return undefined;
}

async function serve(
  yoga: YogaServerInstance<Record<string, unknown>, Context>,
  logger: Logger,
  req: IncomingMessage,
  res: ServerResponse,
  refused: string | undefined,
): Promise<void> {
  const serverContext = { req, res, startedAt: Date.now() };
  const response = refused !== undefined ? refuse(logger, req, serverContext, refused) : await answer(yoga, logger, req, serverContext);
  // Answered without reading the body (401, 413): the client may still be sending it, so this
  // connection cannot carry another request. Closing it is cheaper than reading the rest.
  if (!req.complete && !res.headersSent) res.setHeader("connection", "close");
  try {
    await sendNodeResponse(response, res, req, true);
  } catch (error) {
    logger.warn({ err: error }, "could not send the response");
    res.destroy();
  }
}

async function answer(
  yoga: YogaServerInstance<Record<string, unknown>, Context>,
  logger: Logger,
  req: IncomingMessage,
  serverContext: RequestServerContext,
): Promise<Response> {
  let response: Response;
  if (!validHost(req.headers.host)) {
    response = errorResponse(400, ErrorCode.BAD_USER_INPUT, "The Host header is not a valid host name");
  } else {
    try {
      return await yoga.handleNodeRequestAndResponse(req, serverContext.res, serverContext);
    } catch (error) {
      logger.error({ err: error, method: req.method }, "request failed before GraphQL could answer");
      response = internalError();
    }
  }
  // Yoga's access log never saw these.
  logger.info({ method: req.method, status: response.status, ms: Date.now() - serverContext.startedAt }, "request");
  return response;
}

/** /health stays truthful while draining (the process is alive); everything else, /ready included, is 503. */
function isLiveness(req: IncomingMessage): boolean {
  return req.url === "/health" || req.url?.startsWith("/health?") === true;
}

/** 503, retryable, and this connection takes no more requests. */
function refuse(logger: Logger, req: IncomingMessage, serverContext: RequestServerContext, message: string): Response {
  serverContext.res.setHeader("connection", "close");
  const response = errorResponse(503, ErrorCode.SERVICE_UNAVAILABLE, message, {
    accept: req.headers.accept ?? null,
    headers: { "retry-after": "1" },
    extensions: { retryable: true },
  });
  logger.info({ method: req.method, status: 503, ms: Date.now() - serverContext.startedAt }, "request");
  return response;
}

/** The request URL is built from Host; one that cannot be parsed is the client's error, not ours. */
function validHost(host: string | undefined): boolean {
  if (host === undefined) return true;
  try {
    return new URL(`http://${host}/`).host !== "";
  } catch {
    return false;
  }
}
