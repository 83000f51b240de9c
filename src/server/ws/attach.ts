import type { Server } from "node:http";
import { setTimeout as sleep } from "node:timers/promises";
import { handleProtocols, makeServer } from "graphql-ws";
import type { YogaServerInstance } from "graphql-yoga";
import { WebSocketServer, type ServerOptions as WsServerOptions } from "ws";
import type { TokenVerifier } from "../../auth/verifier.js";
import type { WsSettings } from "../settings.js";
import type { Logger } from "../../lib/logger.js";
import type { Context } from "../../schema/context.js";
import { WsCloseCode } from "./close-codes.js";
import { ConnectionLedger } from "./connection-ledger.js";
import type { MaskError } from "./error-format.js";
import { defaultMaxConnections, leavesFdHeadroom, openFileLimit } from "./fd-limit.js";
import { graphqlWsOptions } from "./operations.js";
import type { PersistedOperationsOptions } from "../persisted-operations.js";
import { serveSocket } from "./socket-glue.js";
import { upgradeGate } from "./upgrade-gate.js";
import { newSocketState, type SocketExtra } from "./socket-state.js";

/** How long a closing handshake may take before the socket is cut (ws' own default is 30 s). */
const CLOSE_HANDSHAKE_MS = 2000;

/** The server's own accounting of its sockets, for operators and tests. */
export interface WsStats {
  /** Sockets counted from their upgrade until their TCP socket closes. */
  connections: number;
  /** Of those, the ones that have not authenticated. */
  unauthenticated: number;
  /** Distinct users with a socket open. */
  users: number;
  /** Queries and mutations executing on all sockets. */
  operationsInFlight: number;
  /** Output queued and not yet handed to the kernel, on all open sockets now. */
  bufferedBytes: number;
  /** The most output one socket has held unsent since start. */
  peakBufferedBytes: number;
  /** Sockets closed with 4413 because they left too much output unread. */
  closedSendBufferFull: number;
  /** The cap in force (WS_MAX_CONNECTIONS, or sized from the open-file limit). */
  maxConnections: number;
}

export interface GraphQLWs {
  stats(): WsStats;
  connectionsOf(userId: string): number;
  /** Closes every socket with 1001 (cut after CLOSE_HANDSHAKE_MS) and resolves once all are gone. */
  close(): Promise<void>;
}

export interface AttachOptions {
  server: Server;
  yoga: YogaServerInstance<Record<string, unknown>, Context>;
  verifier: TokenVerifier;
  logger: Logger;
  /** The app's maskError, so what graphql-ws answers itself looks as it does over HTTP. */
  maskError: MaskError;
  /** The largest message a client may send (MAX_BODY_BYTES). */
  maxPayload: number;
  /** Trusted documents and ALLOW_ARBITRARY_OPERATIONS, as over HTTP. */
  trusted: PersistedOperationsOptions;
  /** Browser origins besides the API's own (CORS_ORIGINS). */
  allowedOrigins: readonly string[];
  /** False while the server drains: new sockets are refused. */
  accepting: () => boolean;
  settings: WsSettings;
}

/** graphql-ws (subprotocol graphql-transport-ws) on /graphql of the same HTTP server, bounded per socket, user, address and process. */
export function attachGraphQLWs(options: AttachOptions): GraphQLWs {
  const { settings, logger } = options;
  const maxConnections = resolveMaxConnections(settings, logger);
  const ledger = new ConnectionLedger({ ...settings, maxConnections });
  const live = new Set<SocketExtra>();
  const counters = { peakBufferedBytes: 0, closedSendBufferFull: 0 };
  const wss = createWss(options);
  const server = makeServer(
    graphqlWsOptions({ ...settings, yoga: options.yoga, verifier: options.verifier, ledger, maskError: options.maskError, trusted: options.trusted }),
  );
  const glue = {
    maxBufferedBytes: settings.maxBufferedBytes,
    keepAliveMs: settings.keepAliveMs,
    logger,
    onSendBufferFull: (extra: SocketExtra, bytes: number) => {
      counters.closedSendBufferFull += 1;
      logger.info({ userId: extra.state.viewer?.userId, bytes }, "closing a WebSocket that leaves its output unread");
      extra.socket.close(WsCloseCode.SendBufferFull, "Send buffer full: the client is not reading");
    },
  };
  options.server.on(
    "upgrade",
    upgradeGate({ ...options, endpoint: options.yoga.graphqlEndpoint, ledger }, (req, socket, head, seat) =>
      wss.handleUpgrade(req, socket, head, (client) => {
        const extra: SocketExtra = { socket: client, request: req, state: newSocketState(seat) };
        live.add(extra);
        client.once("close", () => {
          counters.peakBufferedBytes = Math.max(counters.peakBufferedBytes, extra.state.peakBuffered);
          live.delete(extra);
        });
        serveSocket(server, extra, glue);
      }),
    ),
  );
  return {
    stats: () => stats(ledger, live, counters, maxConnections),
    connectionsOf: (userId) => ledger.connectionsOf(userId),
    close: () => closeAll(wss),
  };
}

function createWss(options: AttachOptions): WebSocketServer {
  // noServer: upgrades are checked by the gate first, and the HTTP server's own errors
  // (EADDRINUSE) stay with it instead of being re-emitted on the WebSocket server.
  // closeTimeout is in ws 8.18+ though not yet in its types.
  const wss = new WebSocketServer({
    noServer: true,
    maxPayload: options.maxPayload,
    handleProtocols,
    closeTimeout: CLOSE_HANDSHAKE_MS,
  } as WsServerOptions);
  wss.on("error", (error) => options.logger.error({ err: error }, "WebSocket server error"));
  return wss;
}

function resolveMaxConnections(settings: WsSettings, logger: Logger): number {
  const fdLimit = openFileLimit();
  const max = settings.maxConnections ?? defaultMaxConnections(fdLimit);
  if (!leavesFdHeadroom(max, fdLimit)) {
    logger.warn(
      { maxConnections: max, openFileLimit: fdLimit },
      "WS_MAX_CONNECTIONS leaves under a quarter of the open-file limit for the database pool and HTTP; raise `ulimit -n`",
    );
  }
  return max;
}

function stats(
  ledger: ConnectionLedger,
  live: Set<SocketExtra>,
  counters: { peakBufferedBytes: number; closedSendBufferFull: number },
  maxConnections: number,
): WsStats {
  let operationsInFlight = 0;
  let bufferedBytes = 0;
  let peakBufferedBytes = counters.peakBufferedBytes;
  for (const { socket, state } of live) {
    operationsInFlight += state.running;
    bufferedBytes += socket.bufferedAmount;
    peakBufferedBytes = Math.max(peakBufferedBytes, state.peakBuffered);
  }
  return {
    connections: ledger.connections,
    unauthenticated: ledger.unauthenticated,
    users: ledger.users,
    operationsInFlight,
    bufferedBytes,
    peakBufferedBytes,
    closedSendBufferFull: counters.closedSendBufferFull,
    maxConnections,
  };
}

/** A proper close (1001 Going Away) for every socket, so clients reconnect elsewhere at once; one that does not answer in time is cut. */
async function closeAll(wss: WebSocketServer): Promise<void> {
  for (const client of wss.clients) client.close(1001, "Going away");
  const closed = new Promise<void>((resolve) => wss.close(() => resolve()));
  const late = await Promise.race([closed.then(() => false), sleep(CLOSE_HANDSHAKE_MS).then(() => true)]);
  if (!late) return;
  for (const client of wss.clients) client.terminate();
  await closed;
}
