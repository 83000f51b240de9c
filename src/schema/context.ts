import type DataLoader from "dataloader";
import type { GraphQLError } from "graphql";
import type { Viewer } from "../auth/verifier.js";
import type { Assistant } from "../chat/assistant.js";
import type { Db } from "../db/client.js";
import type { Message, Task, ToolApproval } from "../generated/prisma/client.js";
import type { UserSettings } from "../domain/user-settings.js";
import type { RealtimeHub } from "../realtime/hub.js";
import type { StreamFeed } from "../realtime/stream-feed.js";
import type { TurnFeed } from "../realtime/turn-feed.js";

/** Per-operation context. The database is injected by buildApp, so several app instances can share one process. */
export interface Context {
  viewer: Viewer;
  db: Db;
  requestId: string;
  /** This app instance's chat turns. */
  assistant: Assistant;
  realtime: RealtimeHub;
  /** messageStream's source. */
  streams: StreamFeed;
  /** turnUpdated's source. */
  turns: TurnFeed;
  /** Tool result messages by `${conversationId}:${toolCallId}`, batched per request. */
  toolResults: DataLoader<string, Message | null>;
  /** Approvals of held tool calls, by the same keys. */
  toolApprovals: DataLoader<string, ToolApproval | null>;
  /** The viewer's tasks by raw id: what tool calls name. */
  tasks: DataLoader<string, Task | null>;
  /** The viewer's settings (by user id): the time zone a recurrence is evaluated in. */
  settings: DataLoader<string, UserSettings>;
  /** Errors to report beside a field's data (a chat turn that ended at a bound). */
  deferredErrors: GraphQLError[];
}
