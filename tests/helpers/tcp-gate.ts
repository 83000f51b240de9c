import { connect, createServer, type AddressInfo, type Socket } from "node:net";

/**
 * A TCP relay in front of a server (NATS, Postgres), for one instance's
 * connections: cut() drops every relayed connection and refuses new ones (the
 * instance sees its server go away while the server, and everyone else on it,
 * stays up), open() lets it reconnect. `url` is the target's URL, user,
 * database and parameters kept, with the relay's address instead.
 */
export interface TcpGate {
  url: string;
  cut(): void;
  open(): void;
  close(): Promise<void>;
}

export async function startTcpGate(targetUrl: string): Promise<TcpGate> {
  const target = new URL(targetUrl);
  const pairs = new Set<{ client: Socket; upstream: Socket }>();
  let shut = false;
  const server = createServer((client) => {
    if (shut) {
      client.destroy();
      return;
    }
    const upstream = connect(Number(target.port), target.hostname);
    const pair = { client, upstream };
    pairs.add(pair);
    const drop = () => {
      pairs.delete(pair);
      client.destroy();
      upstream.destroy();
    };
    client.on("error", drop).on("close", drop);
    upstream.on("error", drop).on("close", drop);
    client.pipe(upstream);
    upstream.pipe(client);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  const dropAll = () => {
    for (const { client, upstream } of pairs) {
      client.destroy();
      upstream.destroy();
    }
  };
  const relayed = new URL(targetUrl);
  relayed.host = `127.0.0.1:${port}`;
  return {
    url: relayed.toString(),
    cut: () => {
      shut = true;
      dropAll();
    },
    open: () => {
      shut = false;
    },
    close: () =>
      new Promise<void>((resolve) => {
        dropAll();
        server.close(() => resolve());
      }),
  };
}
