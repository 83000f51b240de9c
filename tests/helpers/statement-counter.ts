import { createServer, connect, type Server, type Socket } from "node:net";
import type { AddressInfo } from "node:net";

/**
 * A TCP proxy between a client (the API's pg pool) and Postgres that counts
 * the statements the client sends, at the wire: each simple-protocol Query
 * ('Q') and each extended-protocol Execute ('E', one per Bind/Execute round)
 * is one statement, named by the SQL its Bind's prepared statement was parsed
 * from (a named statement, domain/direct-statement.ts, is parsed once per
 * connection and then only bound). BEGIN and COMMIT are statements too (pg sends
 * them as simple Queries), so a transaction costs two more than its body:
 * the same count as bench B4's (which adds a BEGIN to each COMMIT Prisma logs).
 * The server's answers pass through untouched and are not parsed.
 */
export interface StatementCounter {
  /** A connection string like `databaseUrl`, whose host and port are the proxy's. */
  url: string;
  /** The statements seen since the last reset, in order (the SQL of each, whitespace collapsed). */
  statements: string[];
  reset(): void;
  close(): Promise<void>;
}

/** Parses one client's frontend messages as they stream in (the first is the untyped startup message). */
function frontendParser(onStatement: (sql: string) => void): (chunk: Buffer) => void {
  let buffered = Buffer.alloc(0);
  let started = false;
  /** The SQL of each prepared statement this connection parsed, by name ("" the unnamed one). */
  const parsed = new Map<string, string>();
  /** The SQL the last Bind bound: Execute runs it. */
  let bound = "";
  return (chunk) => {
    buffered = Buffer.concat([buffered, chunk]);
    for (;;) {
      if (!started) {
        if (buffered.length < 8) return;
        const length = buffered.readInt32BE(0);
        if (buffered.length < length) return;
        // An SSLRequest (80877103) is answered 'N' and followed by the real startup message.
        if (buffered.readInt32BE(4) !== 80877103) started = true;
        buffered = buffered.subarray(length);
        continue;
      }
      if (buffered.length < 5) return;
      const type = String.fromCharCode(buffered[0]!);
      const length = buffered.readInt32BE(1);
      if (buffered.length < 1 + length) return;
      const body = buffered.subarray(5, 1 + length);
      buffered = buffered.subarray(1 + length);
      if (type === "Q") onStatement(cString(body, 0));
      if (type === "P") parsed.set(cString(body, 0), cString(body, body.indexOf(0) + 1));
      if (type === "B") bound = parsed.get(cString(body, body.indexOf(0) + 1)) ?? "";
      if (type === "E") onStatement(bound);
    }
  };
}

function cString(body: Buffer, start: number): string {
  const end = body.indexOf(0, start);
  return body
    .subarray(start, end < 0 ? body.length : end)
    .toString("utf8")
    .replace(/\s+/g, " ")
    .trim();
}

/** Starts a counting proxy in front of the Postgres of `databaseUrl`. */
export async function startStatementCounter(databaseUrl: string): Promise<StatementCounter> {
  const target = new URL(databaseUrl);
  const sockets = new Set<Socket>();
  const counter = { statements: [] as string[] };
  const server: Server = createServer((client) => {
    const upstream = connect(Number(target.port || 5432), target.hostname);
    sockets.add(client).add(upstream);
    const parse = frontendParser((sql) => counter.statements.push(sql));
    client.on("data", (chunk: Buffer) => {
      parse(chunk);
      upstream.write(chunk);
    });
    upstream.pipe(client);
    const drop = () => {
      client.destroy();
      upstream.destroy();
      sockets.delete(client);
      sockets.delete(upstream);
    };
    client.on("close", drop).on("error", drop);
    upstream.on("close", drop).on("error", drop);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const url = new URL(databaseUrl);
  url.hostname = "127.0.0.1";
  url.port = String((server.address() as AddressInfo).port);
  return {
    url: url.toString(),
    get statements() {
      return counter.statements;
    },
    reset() {
      counter.statements = [];
    },
    async close() {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
