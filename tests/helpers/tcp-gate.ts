import { once } from "node:events";
import { connect, createServer, type AddressInfo, type Socket } from "node:net";

/**
 * A TCP relay in front of a server (Postgres, NATS), for one instance's
 * connections: the instance sees its server go away, or slow down, while the
 * server, and everyone else on it, stays up. `url` is the target's URL, user,
 * database and parameters kept, with the relay's address instead.
 */
export interface TcpGate {
  url: string;
  /** Local ports of the relay's open connections to the target (pg_stat_activity.client_port tells their backends). */
  upstreamPorts(): number[];
  /** New connections are accepted and dropped at once until open() is called; open ones stay. */
  shut(): void;
  /** shut(), and every relayed connection dropped too. */
  cut(): void;
  open(): void;
  /**
   * Holds every chunk the target sends back for `ms` before passing it on (0:
   * at once), so each round trip of the relayed connections takes that long.
   */
  delayReplies(ms: number): void;
  /** Connection attempts dropped while shut. */
  readonly refused: number;
  close(): Promise<void>;
}

interface Pair {
  client: Socket;
  upstream: Socket;
}

const DEFAULT_PORTS: Record<string, number> = { "postgres:": 5432, "postgresql:": 5432, "nats:": 4222 };

export async function startTcpGate(targetUrl: string): Promise<TcpGate> {
  const target = new URL(targetUrl);
  const targetPort = Number(target.port || DEFAULT_PORTS[target.protocol]);
  const pairs = new Set<Pair>();
  let shut = false;
  let refused = 0;
  let replyDelayMs = 0;

  const server = createServer((client) => {
    if (shut) {
      refused += 1;
      client.destroy();
      return;
    }
    const pair = { client, upstream: connect(targetPort, target.hostname) };
    pairs.add(pair);
    relay(
      pair,
      () => replyDelayMs,
      () => pairs.delete(pair),
    );
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const { port } = server.address() as AddressInfo;
  const relayed = new URL(targetUrl);
  relayed.hostname = "127.0.0.1";
  relayed.port = String(port);
  const dropAll = () => {
    for (const { client, upstream } of pairs) {
      client.destroy();
      upstream.destroy();
    }
  };

  return {
    url: relayed.toString(),
    upstreamPorts: () => [...pairs].map(({ upstream }) => upstream.localPort).filter((p): p is number => p !== undefined),
    shut: () => {
      shut = true;
    },
    cut: () => {
      shut = true;
      dropAll();
    },
    open: () => {
      shut = false;
    },
    delayReplies: (ms) => {
      replyDelayMs = ms;
    },
    get refused() {
      return refused;
    },
    close: () =>
      new Promise<void>((resolve) => {
        dropAll();
        server.close(() => resolve());
      }),
  };
}

/** Pipes the client to the target, and the target's replies back after the delay of the moment; either side closing drops both. */
function relay({ client, upstream }: Pair, delayMs: () => number, forget: () => void): void {
  const drop = () => {
    forget();
    client.destroy();
    upstream.destroy();
  };
  client.on("error", drop).on("close", drop);
  upstream.on("error", drop).on("close", drop);
  client.pipe(upstream);
  // Chunks keep their order: each waits for the one before it.
  let replied = Promise.resolve();
  upstream.on("data", (chunk: Buffer) => {
    const due = performance.now() + delayMs();
    replied = replied.then(async () => {
      const wait = due - performance.now();
      if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
      if (!client.destroyed) client.write(chunk);
    });
  });
}
