import { createClient as createWsClient, type Client as WsClient } from "graphql-ws";
import { Client, fetchExchange, mapExchange, subscriptionExchange, type CombinedError } from "urql";
import { createCacheExchange } from "./cache";
import { ConnectionStore } from "./connection";

/** graphql-ws closes with this when connection_init's token is refused or has expired. */
const FORBIDDEN = 4403;

export interface Clients {
  client: Client;
  ws: WsClient;
  connection: ConnectionStore;
  dispose(): void;
}

/** True for an error that means "this token will not do": HTTP 401 or the UNAUTHENTICATED code. */
export function isUnauthenticated(error: CombinedError | undefined): boolean {
  if (!error) return false;
  if ((error.response as Response | undefined)?.status === 401) return true;
  return error.graphQLErrors.some((e) => e.extensions.code === "UNAUTHENTICATED");
}

const isForbidden = (event: unknown) => typeof event === "object" && event !== null && "code" in event && event.code === FORBIDDEN;

/** The page's WebSocket, reporting its state to `connection`; it retries for ever, except after a refused token. */
function openSocket(authorization: string, connection: ConnectionStore, onUnauthenticated: () => void): WsClient {
  let wasConnected = false;
  const wsUrl = new URL("/graphql", window.location.href);
  wsUrl.protocol = wsUrl.protocol === "https:" ? "wss:" : "ws:";
  return createWsClient({
    url: wsUrl.href,
    connectionParams: { authorization },
    lazy: false,
    keepAlive: 10_000,
    retryAttempts: Number.POSITIVE_INFINITY,
    // Quick at first (a restart takes a second or two), then no more than every 5 s.
    retryWait: (retries) => new Promise((resolve) => setTimeout(resolve, Math.min(250 * 2 ** retries, 5000) * (0.75 + Math.random() / 2))),
    shouldRetry: (event) => !isForbidden(event),
    on: {
      connecting: (isRetry) => connection.set(isRetry || wasConnected ? "reconnecting" : "connecting"),
      connected: (_socket, _payload, wasRetry) => {
        connection.set("connected");
        if (wasRetry || wasConnected) connection.reconnected();
        wasConnected = true;
      },
      closed: (event) => {
        if (isForbidden(event)) {
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
}

/**
 * urql over HTTP for queries and mutations, graphql-ws for subscriptions,
 * both on this page's own origin and with the same bearer token, and
 * graphcache (cache.ts) as the one store every view reads.
 */
export function createClients(token: string, onUnauthenticated: () => void): Clients {
  const authorization = `Bearer ${token}`;
  const connection = new ConnectionStore();
  const ws = openSocket(authorization, connection, onUnauthenticated);
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
      createCacheExchange(connection),
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
  return { client, ws, connection, dispose: () => void ws.dispose() };
}
