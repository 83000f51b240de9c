import { WebSocket } from "ws";

/**
 * A bare `ws` socket speaking graphql-transport-ws with one subscription: the
 * cheapest client there is, so thousands fit in the bench's own process. The
 * caller gets each message's raw text (and parses only what it needs).
 */
export interface Subscriber {
  socket: WebSocket;
  /** Resolves with the close code once the socket closes. */
  closed: Promise<number>;
}

export interface SubscriberOptions {
  port: number;
  token: string;
  query: string;
  /** Every message after connection_ack, raw. */
  onMessage: (text: string) => void;
}

/** Opens a socket, initialises it and subscribes; resolves once the server acknowledged the connection. */
export function openSubscriber(options: SubscriberOptions): Promise<Subscriber> {
  return new Promise((resolve, reject) => {
    const socket = new WebSocket(`ws://127.0.0.1:${options.port}/graphql`, "graphql-transport-ws", { perMessageDeflate: false });
    const closed = new Promise<number>((settle) => socket.once("close", (code) => settle(code)));
    let acknowledged = false;
    socket.once("error", reject);
    socket.once("close", (code) => {
      if (!acknowledged) reject(new Error(`the socket closed (${code}) before connection_ack`));
    });
    socket.once("open", () => socket.send(JSON.stringify({ type: "connection_init", payload: { authorization: `Bearer ${options.token}` } })));
    socket.on("message", (data: Buffer) => {
      const text = data.toString();
      if (!acknowledged && text.includes('"connection_ack"')) {
        acknowledged = true;
        // Later socket errors end in "close"; without a listener they would throw.
        socket.on("error", () => {});
        socket.send(JSON.stringify({ id: "1", type: "subscribe", payload: { query: options.query } }));
        resolve({ socket, closed });
        return;
      }
      options.onMessage(text);
    });
  });
}
