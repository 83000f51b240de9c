import type { IncomingMessage } from "node:http";
import type { WebSocket } from "ws";
import type { Viewer } from "../../auth/verifier.js";
import type { Seat } from "./connection-ledger.js";

/** What the server holds for one socket; dropped (with the socket) when it closes. */
export interface SocketState {
  readonly seat: Seat;
  viewer: Viewer | undefined;
  /** Queries and mutations admitted on this socket and not finished executing. */
  running: number;
  /** The most output this socket has held unsent, in bytes. */
  peakBuffered: number;
  /** Sends waiting for their bytes to leave; all settled when the socket closes. */
  readonly pendingSends: Set<() => void>;
}

/** graphql-ws' `ctx.extra` for our sockets. */
export interface SocketExtra {
  readonly socket: WebSocket;
  readonly request: IncomingMessage;
  readonly state: SocketState;
}

export function newSocketState(seat: Seat): SocketState {
  return { seat, viewer: undefined, running: 0, peakBuffered: 0, pendingSends: new Set() };
}
