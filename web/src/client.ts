import { cacheExchange, type Cache } from "@urql/exchange-graphcache";
import { createClient as createWsClient, type Client as WsClient } from "graphql-ws";
import { Client, fetchExchange, mapExchange, subscriptionExchange, type CombinedError } from "urql";
import { ConnectionStore } from "./connection";

/** graphql-ws closes with this when connection_init's token is refused or has expired. */
const FORBIDDEN = 4403;

export interface Clients {
  client: Client;
  ws: WsClient;
  connection: ConnectionStore;
  dispose(): void;
}

function invalidateField(cache: Cache, fieldName: string): void {
  for (const field of cache.inspectFields("Query")) {
    if (field.fieldName === fieldName) cache.invalidate("Query", field.fieldName, field.arguments ?? undefined);
  }
}

/** True for an error that means "this token will not do": HTTP 401 or the UNAUTHENTICATED code. */
export function isUnauthenticated(error: CombinedError | undefined): boolean {
  if (!error) return false;
  if ((error.response as Response | undefined)?.status === 401) return true;
  return error.graphQLErrors.some((e) => e.extensions.code === "UNAUTHENTICATED");
}

/**
 * urql over HTTP for queries and mutations, graphql-ws for subscriptions,
 * both on this page's own origin and with the same bearer token. Lists are
 * re-read when a change could alter them (a taskChanged event, a mutation),
 * so the pane shows the server's order and filters rather than a guess.
 */
export function createClients(token: string, onUnauthenticated: () => void): Clients {
  const authorization = `Bearer ${token}`;
  const connection = new ConnectionStore();
  let wasConnected = false;
  const wsUrl = new URL("/graphql", window.location.href);
  wsUrl.protocol = wsUrl.protocol === "https:" ? "wss:" : "ws:";

  const ws = createWsClient({
    url: wsUrl.href,
    connectionParams: { authorization },
    lazy: false,
    keepAlive: 10_000,
    retryAttempts: Number.POSITIVE_INFINITY,
    // Quick at first (a restart takes a second or two), then no more than every 5 s.
    retryWait: (retries) => new Promise((resolve) => setTimeout(resolve, Math.min(250 * 2 ** retries, 5000) * (0.75 + Math.random() / 2))),
    shouldRetry: (event) => !(typeof event === "object" && event !== null && "code" in event && event.code === FORBIDDEN),
    on: {
      connecting: (isRetry) => connection.set(isRetry || wasConnected ? "reconnecting" : "connecting"),
      connected: (_socket, _payload, wasRetry) => {
        connection.set("connected");
        if (wasRetry || wasConnected) connection.reconnected();
        wasConnected = true;
      },
      closed: (event) => {
        if (typeof event === "object" && event !== null && "code" in event && event.code === FORBIDDEN) {
          connection.set("unauthenticated");
          onUnauthenticated();
          return;
        }
        if (wasConnected) connection.set("reconnecting");
      },
    },
    onNonLazyError: () => {
      // Fatal (the token was refused): `closed` has said so already.
    },
  });

  const invalidateTasks = (_result: unknown, _args: unknown, cache: Cache) => invalidateField(cache, "tasks");
  const invalidateConversations = (_result: unknown, _args: unknown, cache: Cache) => invalidateField(cache, "conversations");

  const client = new Client({
    url: "/graphql",
    fetchOptions: () => ({ headers: { authorization } }),
    // Show what the cache holds at once, and refresh it from the server.
    requestPolicy: "cache-and-network",
    exchanges: [
      mapExchange({
        onError(error) {
          if (isUnauthenticated(error)) onUnauthenticated();
        },
      }),
      cacheExchange({
        keys: {
          TaskConnection: () => null,
          TaskEdge: () => null,
          ConversationConnection: () => null,
          ConversationEdge: () => null,
          MessageConnection: () => null,
          MessageEdge: () => null,
          PageInfo: () => null,
          ToolCall: () => null,
          TokenUsage: () => null,
          TaskChangeEvent: () => null,
          MessageStreamEvent: () => null,
          SendMessagePayload: () => null,
        },
        updates: {
          Subscription: {
            taskChanged: (result, _args, cache) => {
              const event = (result as { taskChanged?: { kind: string; taskId: string } }).taskChanged;
              if (event?.kind === "DELETED") cache.invalidate({ __typename: "Task", id: event.taskId });
              invalidateField(cache, "tasks");
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
            sendMessage: invalidateConversations,
            deleteConversation: (_result, args, cache) => {
              cache.invalidate({ __typename: "Conversation", id: String(args.id) });
              invalidateField(cache, "conversations");
            },
          },
        },
      }),
      fetchExchange,
      subscriptionExchange({
        forwardSubscription(request) {
          const input = { ...request, query: request.query ?? "" };
          return {
            subscribe(sink) {
              const unsubscribe = ws.subscribe(input, sink);
              return { unsubscribe };
            },
          };
        },
      }),
    ],
  });

  return {
    client,
    ws,
    connection,
    dispose: () => void ws.dispose(),
  };
}
