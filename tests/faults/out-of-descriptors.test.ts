import { existsSync, readdirSync } from "node:fs";
import { Agent, request } from "node:http";
import { connect, type Socket } from "node:net";
import { setTimeout as sleep } from "node:timers/promises";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { databaseUrl, newUserId } from "../helpers/db.js";
import { lines, runScript, stopAll, type Program } from "../helpers/process.js";
import type { GraphQLResponse } from "../helpers/server.js";
import { TEST_JWT_SECRET, tokenFor } from "../helpers/tokens.js";
import { record, tally } from "./support.js";

/** The API's `ulimit -n`: room to start (module loading opens many files at once; about 30 are in use once it runs), little to spare. */
const MAX_OPEN_FILES = 256;

/** Requests sent at once while no descriptor is left; only one can have the pool's idle connection. */
const CONCURRENT = 4;

const QUERY = JSON.stringify({ query: "{ tasks(first: 1) { edges { node { id } } } }" });

function openDescriptors(pid: number): number {
  return readdirSync(`/proc/${pid}/fd`).length;
}

/** One request on `agent` (keep-alive: it reuses a connection the server accepted before its descriptors ran out). */
function send(agent: Agent, url: string, token: string, method: "GET" | "POST", body?: string): Promise<GraphQLResponse> {
  return new Promise((resolve, reject) => {
    const headers = { "content-type": "application/json", authorization: `Bearer ${token}` };
    const req = request(url, { method, agent, headers }, (res) => {
      let text = "";
      res.setEncoding("utf8").on("data", (chunk: string) => void (text += chunk));
      res.on("end", () => resolve({ ...(text.startsWith("{") ? (JSON.parse(text) as object) : {}), status: res.statusCode ?? 0 }));
    });
    req.on("error", reject);
    req.end(body);
  });
}

/**
 * Opens idle connections to the server until it holds `limit` descriptors. Bounded: at most
 * twice that many open connections, and 15 s for the server to accept them. A connection the
 * server closed (libuv accepts and drops them once it meets EMFILE) does not count against the
 * bound: a descriptor freed later (an idle pool connection let go) is then still taken.
 */
async function exhaustDescriptors(pid: number, port: number, limit: number): Promise<Socket[]> {
  const sockets = new Set<Socket>();
  const deadline = performance.now() + 15_000;
  while (openDescriptors(pid) < limit && performance.now() < deadline) {
    if (sockets.size >= limit * 2) {
      await sleep(20);
      continue;
    }
    const socket = connect(port, "127.0.0.1");
    socket.on("error", () => {});
    socket.once("close", () => sockets.delete(socket));
    sockets.add(socket);
    await new Promise<void>((resolve) => socket.once("connect", () => resolve()).once("close", () => resolve()));
    // The server's answer to a connection it cannot keep is to close it: give that a moment to show.
    await sleep(1);
  }
  return [...sockets];
}

/**
 * A real EMFILE: the API runs as its own process under a low `ulimit -n`, and
 * idle connections take every descriptor it has. A query that needs a new pool
 * connection then meets EMFILE from connect(2), as it did when a flood of
 * WebSockets filled the table.
 */
describe.runIf(existsSync("/proc/self/fd"))("a pool that cannot open a connection for want of file descriptors", () => {
  const started: Program[] = [];
  let api: Program;
  let url: string;
  let token: string;
  const agent = new Agent({ keepAlive: true, maxSockets: CONCURRENT });
  let fillers: Socket[] = [];

  beforeAll(async () => {
    api = runScript(
      "src/main.ts",
      {
        env: {
          NODE_ENV: "production",
          DATABASE_URL: databaseUrl(),
          AUTH_JWT_SECRET: TEST_JWT_SECRET,
          PORT: "0",
          HOST: "127.0.0.1",
          // The idle connections that hold the descriptors, and the keep-alive ones the requests go on, must stay open.
          HEADERS_TIMEOUT_MS: "120000",
          REQUEST_TIMEOUT_MS: "120000",
          KEEP_ALIVE_TIMEOUT_MS: "120000",
        },
        maxOpenFiles: MAX_OPEN_FILES,
      },
      started,
    );
    url = (await api.waitFor(/GraphQL API ready at (http:\/\/[^"\s]+)/, 60_000))[1]!;
    token = await tokenFor(newUserId("descriptors"));
  }, 90_000);
  afterAll(async () => {
    for (const socket of fillers) socket.destroy();
    agent.destroy();
    await stopAll(started);
  });

  it("should answer SERVICE_UNAVAILABLE (503, retryable) and log a warning, not an internal error", async () => {
    const pid = api.child.pid!;
    // The connections the queries will use, accepted while descriptors were still free (/health needs no database).
    const health = await Promise.all(Array.from({ length: CONCURRENT }, () => send(agent, new URL("/health", url).href, token, "GET")));
    expect(health.map((answer) => answer.status)).toEqual(Array<number>(CONCURRENT).fill(200));
    fillers = await exhaustDescriptors(pid, Number(new URL(url).port), MAX_OPEN_FILES);
    expect(openDescriptors(pid)).toBeGreaterThanOrEqual(MAX_OPEN_FILES);

    const answers = await Promise.all(Array.from({ length: CONCURRENT }, () => send(agent, url, token, "POST", QUERY)));
    const outcome = tally();
    for (const answer of answers) record(outcome, answer);
    expect(outcome.violations).toEqual([]);
    expect(outcome.unavailable, JSON.stringify(answers)).toBeGreaterThan(0);

    const logged = lines(api.stdout()).map((line) => JSON.parse(line) as { level: number; msg: string; reason?: string });
    expect(logged.filter((line) => line.msg === "unexpected error in a GraphQL operation")).toEqual([]);
    const warned = logged.filter((line) => line.msg === "database unavailable");
    expect(warned.length).toBeGreaterThan(0);
    expect(warned.every((line) => line.level === 40 && line.reason === "out of file descriptors")).toBe(true);
  });

  it("should serve again once descriptors are free", async () => {
    for (const socket of fillers) socket.destroy();
    fillers = [];
    await vi.waitFor(async () => expect((await send(agent, url, token, "POST", QUERY)).status, "a query's status").toBe(200), {
      timeout: 20_000,
      interval: 20,
    });
  });
});
