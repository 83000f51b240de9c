/**
 * B8's subscribers, in a process of their own (started by bench/scale.ts):
 * the sockets B8 needs do not fit in one process's file descriptors, and
 * their parsing must not eat the writer's CPU. Each socket is a bare `ws`
 * graphql-transport-ws client (bench/ws-subscriber.ts) with one taskChanged
 * subscription; on every event it notes the write number in the task's title
 * and the time, by the machine's clock (performance.timeOrigin + now), which
 * the writer uses too. Talks to its parent over IPC only.
 */
import type { WebSocket } from "ws";
import { openSubscriber } from "./ws-subscriber.js";

export type ToClients =
  /** Opens one socket per target: [port index, token index]. */
  { type: "open"; ports: number[]; tokens: string[]; targets: [number, number][] } | { type: "collect" } | { type: "close" };

export type FromClients =
  | { type: "opened"; count: number }
  | { type: "failed"; message: string }
  /** Each receipt once: the write number and when it arrived; duplicates counted apart. */
  | { type: "receipts"; writes: number[]; at: number[]; duplicates: number };

const QUERY = "subscription { taskChanged { kind taskId task { id title } } }";
const BATCH = 250;

if (!process.send) throw new Error("bench/scale-clients.ts is started by bench/scale.ts");
const send = (message: FromClients) => process.send?.(message);
const sockets: WebSocket[] = [];
let writes: number[] = [];
let at: number[] = [];
let duplicates = 0;

async function open(message: Extract<ToClients, { type: "open" }>): Promise<void> {
  for (let start = 0; start < message.targets.length; start += BATCH) {
    const batch = message.targets.slice(start, start + BATCH).map(([port, token]) => {
      const seen = new Set<number>();
      return openSubscriber({
        port: message.ports[port]!,
        token: message.tokens[token]!,
        query: QUERY,
        onMessage: (text) => {
          const match = /"title":"b8 (\d+)"/.exec(text);
          if (!match) return;
          const write = Number(match[1]);
          if (seen.has(write)) {
            duplicates += 1;
            return;
          }
          seen.add(write);
          writes.push(write);
          at.push(performance.timeOrigin + performance.now());
        },
      });
    });
    for (const { socket } of await Promise.all(batch)) sockets.push(socket);
  }
  send({ type: "opened", count: sockets.length });
}

process.on("message", (message: ToClients) => {
  if (message.type === "open") {
    open(message).catch((error: unknown) => send({ type: "failed", message: String(error) }));
  } else if (message.type === "collect") {
    send({ type: "receipts", writes, at, duplicates });
    writes = [];
    at = [];
    duplicates = 0;
  } else {
    for (const socket of sockets) socket.terminate();
    process.exit(0);
  }
});
