import type { IncomingMessage, ServerResponse } from "node:http";
import { sendNodeResponse } from "@whatwg-node/server";
import type { YogaServerInstance } from "graphql-yoga";
import type { Logger } from "../logger.js";
import { requestContext, requestIdFrom } from "../request-context.js";
import type { Context } from "../schema/context.js";
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
export function createFrontDoor(yoga: YogaServerInstance<Record<string, unknown>, Context>, logger: Logger) {
  return (req: IncomingMessage, res: ServerResponse): void => {
    const requestId = requestIdFrom(req.headers["x-request-id"]);
    res.setHeader("x-request-id", requestId);
    requestContext.run({ requestId }, () => void serve(yoga, logger, req, res));
  };
}

async function serve(
  yoga: YogaServerInstance<Record<string, unknown>, Context>,
  logger: Logger,
  req: IncomingMessage,
  res: ServerResponse,
): Promise<void> {
  const serverContext: RequestServerContext = { req, res, startedAt: Date.now() };
  let response: Response;
  try {
    response = await yoga.handleNodeRequestAndResponse(req, res, serverContext);
  } catch (error) {
    logger.error({ err: error, method: req.method }, "request failed before GraphQL could answer");
    response = internalError();
    logger.info({ method: req.method, status: 500, ms: Date.now() - serverContext.startedAt }, "request");
  }
  try {
    await sendNodeResponse(response, res, req, true);
  } catch (error) {
    logger.warn({ err: error }, "could not send the response");
    res.destroy();
  }
}
