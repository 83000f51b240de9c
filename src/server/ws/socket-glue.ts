import { CloseCode, type Server as GraphQLWsServer } from "graphql-ws";
import type { WebSocket } from "ws";
import type { Logger } from "../../lib/logger.js";
import type { SocketExtra, SocketState } from "./socket-state.js";

export interface GlueOptions {
  /** WS_MAX_BUFFERED_BYTES. */
  maxBufferedBytes: number;
  /** WS_KEEP_ALIVE_MS: a ping this often; a socket that has not answered by the next one is cut. */
  keepAliveMs: number;
  logger: Logger;
  /** A send found the socket's unsent output past the cap; the socket must be closed. */
  onSendBufferFull(extra: SocketExtra, bytes: number): void;
}

/**
 * graphql-ws' server on one `ws` socket: what `graphql-ws/use/ws` does, but
 * with sends bounded by the socket's unsent output, errors logged instead of
 * printed, and every waiting send settled when the socket closes so nothing
 * the socket held stays referenced.
 */
export function serveSocket(server: GraphQLWsServer<SocketExtra>, extra: SocketExtra, options: GlueOptions): void {
  const { socket } = extra;
  // ws closes the socket itself on a protocol error (1002, 1007, 1009); the event only needs a listener.
  socket.on("error", (error) => options.logger.debug({ err: error }, "WebSocket error"));
  const stopKeepAlive = keepAlive(socket, options.keepAliveMs);
  const closed = server.opened(
    {
      protocol: socket.protocol,
      send: (data) => sendBounded(extra, data, options),
      close: (code, reason) => socket.close(code, reason),
      onMessage: (handle) => socket.on("message", (data: Buffer) => void handleMessage(socket, () => handle(String(data)), options.logger)),
    },
    extra,
  );
  socket.once("close", (code, reason) => {
    stopKeepAlive();
    settlePendingSends(extra.state);
    // Returns every subscription's iterator, so the hub lets go of it.
    closed(code, String(reason)).catch((error: unknown) => options.logger.error({ err: error }, "graphql-ws close handling failed"));
  });
}

async function handleMessage(socket: WebSocket, handle: () => Promise<void>, logger: Logger): Promise<void> {
  try {
    await handle();
  } catch (error) {
    logger.error({ err: error }, "graphql-ws could not handle a message");
    socket.close(CloseCode.InternalServerError, "Internal server error");
  }
}

/**
 * Queues one message, unless the socket already holds unsent output and this
 * message would take it past the cap: then the socket is closed instead. One
 * message always goes out on an empty buffer, so a large result still reaches
 * a client that keeps up; what a socket pins is at most max(cap, one message).
 */
function sendBounded(extra: SocketExtra, data: string, options: GlueOptions): Promise<void> {
  const { socket, state } = extra;
  if (socket.readyState !== socket.OPEN) return Promise.resolve();
  const buffered = socket.bufferedAmount;
  const size = Buffer.byteLength(data);
  if (buffered > 0 && buffered + size > options.maxBufferedBytes) {
    options.onSendBufferFull(extra, buffered + size);
    return Promise.resolve();
  }
  return new Promise((resolve) => {
    const settle = () => {
      state.pendingSends.delete(settle);
      resolve();
    };
    state.pendingSends.add(settle);
    // Settled on a write error too: the socket is closing, and its close frees the rest.
    socket.send(data, settle);
    state.peakBuffered = Math.max(state.peakBuffered, socket.bufferedAmount);
  });
}

function settlePendingSends(state: SocketState): void {
  for (const settle of [...state.pendingSends]) settle();
}

/** Pings; a socket that does not answer (gone, or not reading) before the next ping is cut. */
function keepAlive(socket: WebSocket, intervalMs: number): () => void {
  let awaitingPong = false;
  const onPong = () => (awaitingPong = false);
  socket.on("pong", onPong);
  const interval = setInterval(() => {
    if (socket.readyState !== socket.OPEN) return;
    if (awaitingPong) return socket.terminate();
    awaitingPong = true;
    socket.ping();
  }, intervalMs);
  return () => {
    clearInterval(interval);
    socket.off("pong", onPong);
  };
}
