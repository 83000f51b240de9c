import { cacheExchange, type Cache, type CacheExchangeOpts } from "@urql/exchange-graphcache";
import type { Exchange } from "urql";
import type { ConnectionStore } from "./connection";
import type { MESSAGE_ADDED, MESSAGE_STREAM, SEND_MESSAGE } from "./documents";
import type { ResultOf } from "./graphql";
import { addMessage, addOlderPage, applyStreamEvent, type MessagePage } from "./message-cache";
import { signalTaskChange } from "./task-change-signal";

/**
 * The client's one store of server data: urql's graphcache. Every view reads
 * through it; subscriptions and mutations change it here, in updaters.
 */

const NODE_TYPES = new Set(["Task", "Conversation", "Message", "Turn", "TaskEvent"]);

/** The type a global id names (base64 of "Type:id"), so `node(id:)` can be answered from the cache. */
export function typenameOfGlobalId(id: string): string | undefined {
  try {
    const typename = atob(id).split(":", 1)[0];
    return typename !== undefined && NODE_TYPES.has(typename) ? typename : undefined;
  } catch {
    return undefined;
  }
}

function invalidateField(cache: Cache, fieldName: string): void {
  for (const field of cache.inspectFields("Query")) {
    if (field.fieldName === fieldName) cache.invalidate("Query", field.fieldName, field.arguments ?? undefined);
  }
}

const invalidateTasks = (_result: unknown, _args: unknown, cache: Cache) => invalidateField(cache, "tasks");
const invalidateConversations = (_result: unknown, _args: unknown, cache: Cache) => invalidateField(cache, "conversations");

/** Connections, edges and payloads have no identity of their own: they live inside their parent. */
const keys: CacheExchangeOpts["keys"] = {
  TaskConnection: () => null,
  TaskEdge: () => null,
  ConversationConnection: () => null,
  ConversationEdge: () => null,
  MessageConnection: () => null,
  MessageEdge: () => null,
  PageInfo: () => null,
  ToolCall: () => null,
  ToolApproval: () => null,
  TokenUsage: () => null,
  TaskChangeEvent: () => null,
  ConversationChangeEvent: () => null,
  MessageStreamEvent: () => null,
  SendMessagePayload: () => null,
  TaskEventConnection: () => null,
  TaskEventEdge: () => null,
  UndoCheck: () => null,
  UndoTurnPayload: () => null,
};

const resolvers: CacheExchangeOpts["resolvers"] = {
  Query: {
    node: (_parent, args) => {
      const typename = typenameOfGlobalId(String(args.id));
      return typename === undefined ? undefined : { __typename: typename, id: String(args.id) };
    },
  },
};

/**
 * Lists are re-read when a change could alter them (a taskChanged or
 * conversationChanged event, a mutation), so the panes show the server's order and filters rather than a
 * guess; a conversation's messages are kept in order here (message-cache.ts).
 */
function updates(connection: ConnectionStore): CacheExchangeOpts["updates"] {
  return {
    Conversation: {
      // Only an older page (loadOlder) is merged: the newest page is the list itself.
      messages: (parent, args, cache) => {
        if (args.before == null) return;
        addOlderPage(cache, String(parent.id), parent.messages as MessagePage);
      },
    },
    Subscription: {
      taskChanged: (result, _args, cache) => {
        const event = (result as { taskChanged?: { kind: string; taskId: string } }).taskChanged;
        if (event?.kind === "DELETED") cache.invalidate({ __typename: "Task", id: event.taskId });
        invalidateField(cache, "tasks");
        // What each turn's Undo may do, and each task's history, can have changed with it.
        signalTaskChange();
      },
      // A conversation created, renamed, with new activity or deleted, here or anywhere: the list is read again, in the server's order.
      conversationChanged: (result, _args, cache) => {
        const event = (result as { conversationChanged?: { kind: string; conversationId: string } }).conversationChanged;
        if (event?.kind === "DELETED") cache.invalidate({ __typename: "Conversation", id: event.conversationId });
        invalidateField(cache, "conversations");
      },
      messageAdded: (result, args, cache) => {
        const { messageAdded } = result as ResultOf<typeof MESSAGE_ADDED>;
        addMessage(cache, String(args.conversationId), messageAdded);
      },
      messageStream: (result, args, cache) => {
        const { messageStream } = result as ResultOf<typeof MESSAGE_STREAM>;
        const conversationId = String(args.conversationId);
        if (!applyStreamEvent(cache, conversationId, messageStream)) connection.streamGap(conversationId);
      },
    },
    Mutation: {
      addTask: invalidateTasks,
      completeTask: invalidateTasks,
      updateTask: invalidateTasks,
      deleteTask: (_result, args, cache) => {
        cache.invalidate({ __typename: "Task", id: String(args.id) });
        invalidateField(cache, "tasks");
      },
      createConversation: invalidateConversations,
      // A rename also moves it up the list (updatedAt): read the list again, as conversationChanged will.
      updateConversation: invalidateConversations,
      sendMessage: (result, args, cache) => {
        invalidateConversations(result, args, cache);
        const payload = (result as Partial<ResultOf<typeof SEND_MESSAGE>>).sendMessage;
        if (payload) addMessage(cache, payload.conversation.id, payload.userMessage);
      },
      deleteConversation: (_result, args, cache) => {
        cache.invalidate({ __typename: "Conversation", id: String(args.id) });
        invalidateField(cache, "conversations");
      },
    },
  };
}

export function createCacheExchange(connection: ConnectionStore): Exchange {
  return cacheExchange({ keys, resolvers, updates: updates(connection) });
}
