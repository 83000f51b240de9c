import type { AddressInfo } from "node:net";
import { connect, type Socket } from "node:net";
import { WebSocketServer, type RawData, type WebSocket } from "ws";
import { configureNeonTransport } from "../../src/db/client.js";

export interface NeonWsProxyStats {
  /** WebSocket connections accepted. */
  connections: number;
  /** Bytes relayed from the driver to Postgres. */
  bytesToServer: number;
  /** Bytes relayed from Postgres to the driver. */
  bytesToClient: number;
  /** The request path (with query) of every connection, in order. */
  requests: string[];
  /** The `host:port` each connection was relayed to, in order. */
  targets: string[];
}

export interface NeonWsProxy {
  /** `127.0.0.1:PORT/v1`: the value for `neonConfig.wsProxy` (no protocol). */
  wsProxy: string;
  readonly stats: NeonWsProxyStats;
  /** Terminates every connection and stops listening. */
  close(): Promise<void>;
}

const PATH = "/v1";

/** A relay to the Postgres `databaseUrl` names, with the Neon driver pointed at it (plain ws://). */
export async function proxyNeonTo(databaseUrl: string): Promise<NeonWsProxy> {
  const url = new URL(databaseUrl);
  const proxy = await startNeonWsProxy({ host: url.hostname, port: Number(url.port || 5432) });
  configureNeonTransport({ wsProxy: proxy.wsProxy, useSecureWebSocket: false });
  return proxy;
}

/**
 * A WebSocket-to-TCP relay like Neon's own, on loopback: each binary frame the
 * driver sends becomes bytes on a TCP connection to Postgres, and back. Neon's
 * driver asks for `ws://<wsProxy>?address=<host>:<port>` when `wsProxy` is a
 * string and for `ws://<wsProxy(host, port)>` verbatim when it is a function;
 * the relay honours `address` when present and otherwise uses `target`.
 */
export async function startNeonWsProxy(target: { host: string; port: number }): Promise<NeonWsProxy> {
  const stats: NeonWsProxyStats = { connections: 0, bytesToServer: 0, bytesToClient: 0, requests: [], targets: [] };
  const sockets = new Set<Socket>();
  const wss = new WebSocketServer({ host: "127.0.0.1", port: 0, path: PATH });
  await new Promise<void>((resolve, reject) => {
    wss.once("listening", resolve);
    wss.once("error", reject);
  });
  // After startup a server error has no one to reject; connections report their own.
  wss.on("error", () => {});

  wss.on("connection", (ws, request) => {
    stats.connections += 1;
    stats.requests.push(request.url ?? "");
    const { host, port } = addressOf(request.url, target);
    stats.targets.push(`${host}:${port}`);

    const tcp = connect({ host, port });
    tcp.setNoDelay(true);
    sockets.add(tcp);

    // net.Socket queues writes made while it is still connecting.
    ws.on("message", (data) => {
      if (tcp.destroyed) return;
      const bytes = toBuffer(data);
      stats.bytesToServer += bytes.length;
      tcp.write(bytes);
    });
    tcp.on("data", (bytes) => {
      if (ws.readyState !== ws.OPEN) return;
      stats.bytesToClient += bytes.length;
      ws.send(bytes, { binary: true });
    });

    ws.on("close", () => tcp.end());
    ws.on("error", () => tcp.destroy());
    tcp.on("error", () => ws.terminate());
    tcp.on("close", () => {
      sockets.delete(tcp);
      closeQuietly(ws);
    });
  });

  const { port } = wss.address() as AddressInfo;
  return {
    wsProxy: `127.0.0.1:${port}${PATH}`,
    stats,
    close: () =>
      new Promise<void>((resolve, reject) => {
        for (const client of wss.clients) client.terminate();
        for (const socket of sockets) socket.destroy();
        wss.close((error) => (error ? reject(error) : resolve()));
      }),
  };
}

/** The `address=host:port` the driver asked for, else the configured target. */
function addressOf(url: string | undefined, fallback: { host: string; port: number }): { host: string; port: number } {
  const address = new URL(url ?? "/", "ws://proxy").searchParams.get("address");
  if (!address) return fallback;
  const colon = address.lastIndexOf(":");
  const port = Number(address.slice(colon + 1));
  if (colon <= 0 || !Number.isInteger(port) || port <= 0) return fallback;
  // "[::1]:5432" names an IPv6 host in brackets.
  const host = address.slice(0, colon).replace(/^\[(.*)\]$/, "$1");
  return { host, port };
}

function toBuffer(data: RawData): Buffer {
  if (Buffer.isBuffer(data)) return data;
  if (Array.isArray(data)) return Buffer.concat(data);
  return Buffer.from(data);
}

function closeQuietly(ws: WebSocket): void {
  if (ws.readyState === ws.CONNECTING || ws.readyState === ws.OPEN) ws.close();
}
