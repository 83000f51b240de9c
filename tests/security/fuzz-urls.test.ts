import { request as httpRequest } from "node:http";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { capturingLogger, newUser, startTestServer, type TestServer, type TestUser } from "../helpers/server.js";

const ROUTES = ["/", "/graphql", "/mcp", "/health", "/ready", "/graphiql/assets/", "/graphiql/assets/graphiql.css", "/nope"];
const ESCAPES = [
  "%E0%A4%A",
  "%",
  "%%",
  "%zz",
  "%00",
  "%C0%AF",
  "%E9",
  "%ED%A0%80",
  "%F4%90%80%80",
  "%2e%2e%2f",
  "..%2f..%2f",
  "%u0041",
  "%F0%9F%A7%BE",
  "?query=%E0",
  "?%",
  "#x",
  ";a=b",
];
const METHODS = ["GET", "POST", "HEAD", "OPTIONS", "PUT", "DELETE", "PATCH"];
const HOSTS = ["[bad", "a b", "%%", "localhost:99999", "[::1", "exa mple:1", "é.example"];

/** A small seeded generator, so a failure can be replayed. */
function random(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state * 1664525 + 1013904223) >>> 0;
    return state / 2 ** 32;
  };
}

interface RawAnswer {
  status: number;
  body: string;
}

/** Sends the path exactly as written: fetch would normalise it first. */
function send(port: number, method: string, path: string, headers: Record<string, string> = {}): Promise<RawAnswer> {
  return new Promise((resolve) => {
    const req = httpRequest({ host: "127.0.0.1", port, method, path, headers, insecureHTTPParser: true }, (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (chunk: string) => (body += chunk));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
      res.on("error", () => resolve({ status: -1, body }));
    });
    // A request the HTTP parser itself refuses ends in a 400 and a closed socket; that is fine too.
    req.on("error", () => resolve({ status: -1, body: "" }));
    if (method === "POST" || method === "PUT" || method === "PATCH") req.write("{}");
    req.end();
  });
}

describe("malformed URLs on every route", () => {
  let server: TestServer;
  let user: TestUser;
  let port: number;
  const captured = capturingLogger();

  beforeAll(async () => {
    server = await startTestServer({ graphiql: {}, logger: captured.logger });
    user = await newUser(server, "fuzz");
    port = Number(new URL(server.baseUrl).port);
  });
  afterAll(async () => {
    await server?.close();
  });

  function expectWellFormed(answer: RawAnswer, what: string): void {
    // -1: the HTTP parser itself refused the request line, before any of our code.
    expect(answer.status === -1 || (answer.status >= 200 && answer.status < 500), `${what}: ${answer.status}`).toBe(true);
    expect(answer.body, what).not.toMatch(/\bat .+:\d+:\d+|URIError|TypeError|stack/);
  }

  it("should never crash or leak on random paths, escapes and methods", async () => {
    const next = random(20261127);
    const pick = <T>(list: readonly T[]): T => list[Math.floor(next() * list.length)] as T;
    let sent = 0;
    for (let batch = 0; batch < 20; batch++) {
      const requests = Array.from({ length: 25 }, () => {
        const path = `${pick(ROUTES)}${pick(ESCAPES)}${next() < 0.5 ? pick(ESCAPES) : ""}`;
        const method = pick(METHODS);
        const headers: Record<string, string> = next() < 0.5 ? { authorization: `Bearer ${user.token}` } : {};
        return send(port, method, path, headers).then((answer) => expectWellFormed(answer, `${method} ${path}`));
      });
      await Promise.all(requests);
      sent += requests.length;
    }
    expect(sent).toBe(500);
    expect((await fetch(`${server.baseUrl}/health`)).status).toBe(200);
  });

  it("should answer the escape that used to kill the dev server", async () => {
    const answer = await send(port, "GET", "/graphiql/assets/%E0%A4%A");
    expect(answer.status).toBe(404);
    expect((await fetch(`${server.baseUrl}/health`)).status).toBe(200);
  });

  it("should survive malformed Host headers", async () => {
    for (const host of HOSTS) {
      for (const path of ["/graphql", "/mcp", "/health", "/graphiql/assets/graphiql.css"]) {
        expectWellFormed(await send(port, "GET", path, { host }), `Host ${host} ${path}`);
      }
    }
    const ok = await user.gql(`{ tasks { edges { node { id } } } }`);
    expect(ok.errors).toBeUndefined();
  });

  it("should log an answered request's line for every route", async () => {
    captured.lines.length = 0;
    await send(port, "GET", "/mcp%E0");
    await send(port, "GET", "/graphiql/assets/%E0%A4%A");
    const logged = captured.lines.map((line) => JSON.parse(line) as { msg: string; status?: number; requestId?: string });
    const requests = logged.filter((entry) => entry.msg === "request");
    expect(requests).toHaveLength(2);
    for (const entry of requests) expect(entry.requestId).toMatch(/[0-9a-f-]{36}/);
  });
});
