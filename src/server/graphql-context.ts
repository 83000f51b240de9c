import type { YogaInitialContext } from "graphql-yoga";
import { bearerToken, type TokenVerifier, type Viewer } from "../auth/verifier.js";
import type { Assistant } from "../chat/assistant.js";
import type { Db } from "../db/client.js";
import { AppError, toGraphQLError } from "../lib/errors.js";
import { currentRequestId, requestIdFrom } from "../lib/request-context.js";
import type { RealtimeHub } from "../realtime/hub.js";
import type { StreamFeed } from "../realtime/stream-feed.js";
import type { TurnFeed } from "../realtime/turn-feed.js";
import { createSettingsLoader, createTaskLoader, createToolApprovalLoader, createToolResultLoader } from "../schema/loaders.js";
import type { Context } from "../schema/context.js";
import type { FrontDoorContext } from "./auth-first.js";

/** The app instance's services that every operation's context carries. */
export interface ContextServices {
  db: Db;
  verifier: TokenVerifier;
  assistant: Assistant;
  realtime: RealtimeHub;
  streams: StreamFeed;
  turns: TurnFeed;
}

/** Builds each operation's context: its viewer, its request id, this instance's services and per-request loaders. */
export function contextFactory(services: ContextServices) {
  const { db, verifier, assistant, realtime, streams, turns } = services;
  return async (initial: YogaInitialContext): Promise<Context> => {
    const requestId = currentRequestId() ?? requestIdFrom(initial.request?.headers.get("x-request-id"));
    // The front door (HTTP) or graphql-ws (WebSocket) has verified the token already.
    const viewer = (initial as FrontDoorContext).viewer ?? (await verifyFallback(verifier, initial.request));
    return {
      viewer,
      db,
      requestId,
      assistant,
      realtime,
      streams,
      turns,
      toolResults: createToolResultLoader(db, viewer.userId),
      toolApprovals: createToolApprovalLoader(db, viewer.userId),
      tasks: createTaskLoader(db, viewer.userId),
      settings: createSettingsLoader(db),
      deferredErrors: [],
    };
  };
}

async function verifyFallback(verifier: TokenVerifier, request: Request | undefined): Promise<Viewer> {
  try {
    return await verifier.verify(bearerToken(request?.headers.get("authorization")));
  } catch (error) {
    // 401 tells HTTP clients and proxies what happened; yoga strips `http` from the body.
    if (error instanceof AppError) throw toGraphQLError(error, undefined, { http: { status: 401 } });
    throw error;
  }
}
