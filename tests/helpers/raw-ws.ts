import { WebSocket } from "ws";

export interface ServerMessage {
  type: string;
  id?: string;
  payload?: { data?: Record<string, unknown> | null; errors?: { message: string; extensions?: Record<string, unknown> }[] } & Record<string, unknown>;
}

/**
 * A bare `ws` socket speaking graphql-transport-ws, for tests that need what a
 * graphql-ws client hides: the HTTP status of a refused upgrade, a socket that
 * never sends connection_init, one that stops reading.
 */
export interface RawSocket {
  socket: WebSocket;
  /** Every message received so far, parsed, in order. */
  messages: ServerMessage[];
  /** The close code and reason, once the socket has closed. */
  closed: Promise<{ code: number; reason: string }>;
  /** Sends connection_init with the token; resolves "ack" on connection_ack, else with the close. */
  init(token: string | undefined): Promise<"ack" | { code: number; reason: string }>;
  send(message: Record<string, unknown>): void;
}

/** Opens a socket on `url`; resolves once it is open, or with the HTTP status that refused the upgrade. */
export function openRaw(url: string): Promise<RawSocket | { refused: number }> {
  return new Promise((resolve, reject) => {
    const socket = new WebSocket(url, "graphql-transport-ws", { perMessageDeflate: false });
    const messages: ServerMessage[] = [];
    const closed = new Promise<{ code: number; reason: string }>((settle) =>
      socket.once("close", (code, reason) => settle({ code, reason: String(reason) })),
    );
    socket.on("message", (data) => messages.push(JSON.parse(String(data)) as ServerMessage));
    socket.on("error", () => {});
    socket.once("unexpected-response", (_request, response) => {
      resolve({ refused: response.statusCode ?? 0 });
      socket.terminate();
    });
    socket.once("close", () => reject(new Error("the socket closed before it opened")));
    socket.once("open", () => {
      const send = (message: Record<string, unknown>) => socket.send(JSON.stringify(message));
      const init = (token: string | undefined) => {
        const acked = new Promise<"ack">((settle) => socket.on("message", (data) => String(data).includes('"connection_ack"') && settle("ack")));
        send({ type: "connection_init", payload: token === undefined ? {} : { authorization: `Bearer ${token}` } });
        return Promise.race([acked, closed]);
      };
      resolve({ socket, messages, closed, init, send });
    });
  });
}

/** openRaw, failing when the upgrade is refused. */
export async function openRawOrFail(url: string): Promise<RawSocket> {
  const raw = await openRaw(url);
  if ("refused" in raw) throw new Error(`the upgrade was refused with HTTP ${raw.refused}`);
  return raw;
}
