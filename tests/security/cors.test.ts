import { request as httpRequest } from "node:http";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { WebSocket } from "ws";
import { developmentHttp, newUser, startTestServer, type TestServer, type TestUser } from "../helpers/server.js";

const LISTED = "http://app.example.test";
const EVIL = "http://evil.example";
const DEV_TOKEN = "dev-token-for-the-graphiql-page-only";

/** A raw request, so Host and Origin can be anything a browser or an attacker could send. */
function raw(
  url: string,
  headers: Record<string, string>,
  method = "GET",
): Promise<{ status: number; headers: Record<string, unknown>; body: string }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(url, { method, headers }, (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (chunk: string) => (body += chunk));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    });
    req.on("error", reject);
    req.end();
  });
}

function wsOpen(url: string, headers: Record<string, string>): Promise<"open" | number> {
  return new Promise((resolve) => {
    const socket = new WebSocket(url, "graphql-transport-ws", { headers });
    socket.on("open", () => {
      socket.close();
      resolve("open");
    });
    socket.on("unexpected-response", (_req, res) => {
      resolve(res.statusCode ?? 0);
      socket.terminate();
    });
    socket.on("error", () => {});
  });
}

describe("CORS", () => {
  let server: TestServer;
  let user: TestUser;

  beforeAll(async () => {
    server = await startTestServer({ http: developmentHttp({ corsOrigins: [LISTED] }) });
    user = await newUser(server, "cors");
  });
  afterAll(async () => {
    await server?.close();
  });

  function post(origin: string) {
    return fetch(server.url, {
      method: "POST",
      headers: { origin, "content-type": "application/json", authorization: `Bearer ${user.token}` },
      body: JSON.stringify({ query: "{ tasks { edges { node { id } } } }" }),
    });
  }

  it("should give an unlisted origin no access-control-allow-origin and never allow-credentials", async () => {
    const preflight = await fetch(server.url, {
      method: "OPTIONS",
      headers: { origin: EVIL, "access-control-request-method": "POST", "access-control-request-headers": "authorization, content-type" },
    });
    expect(preflight.headers.get("access-control-allow-origin")).toBeNull();
    expect(preflight.headers.get("access-control-allow-credentials")).toBeNull();
    const response = await post(EVIL);
    expect(response.headers.get("access-control-allow-origin")).toBeNull();
    expect(response.headers.get("access-control-allow-credentials")).toBeNull();
  });

  it("should allow a listed origin, naming it and not another", async () => {
    const preflight = await fetch(server.url, {
      method: "OPTIONS",
      headers: { origin: LISTED, "access-control-request-method": "POST", "access-control-request-headers": "authorization, content-type" },
    });
    expect(preflight.status).toBe(204);
    expect(preflight.headers.get("access-control-allow-origin")).toBe(LISTED);
    expect(preflight.headers.get("access-control-allow-headers")).toContain("authorization");
    const response = await post(LISTED);
    expect(response.status).toBe(200);
    expect(response.headers.get("access-control-allow-origin")).toBe(LISTED);
    expect(response.headers.get("access-control-allow-credentials")).toBe("true");
  });

  it("should refuse a WebSocket upgrade from an unlisted origin, and accept the listed one and non-browser clients", async () => {
    expect(await wsOpen(server.wsUrl, { origin: EVIL })).toBe(403);
    expect(await wsOpen(server.wsUrl, { origin: LISTED })).toBe("open");
    expect(await wsOpen(server.wsUrl, { origin: server.baseUrl })).toBe("open");
    expect(await wsOpen(server.wsUrl, {})).toBe("open");
  });
});

describe("the dev token in GraphiQL", () => {
  let server: TestServer;
  let host: string;

  beforeAll(async () => {
    server = await startTestServer({ graphiql: { devHeaders: { Authorization: `Bearer ${DEV_TOKEN}` } } });
    host = new URL(server.baseUrl).host;
  });
  afterAll(async () => {
    await server?.close();
  });

  const page = (headers: Record<string, string>) => raw(server.url, { accept: "text/html", ...headers });

  it("should be in the page for a same-origin request from this machine", async () => {
    const typed = await page({ host, "sec-fetch-site": "none" });
    expect(typed.status).toBe(200);
    expect(typed.body).toContain(DEV_TOKEN);
    expect(typed.headers["cache-control"]).toBe("no-store");
    expect(typed.headers["x-frame-options"]).toBe("DENY");
    const sameOrigin = await page({ host, origin: `http://${host}`, "sec-fetch-site": "same-origin" });
    expect(sameOrigin.body).toContain(DEV_TOKEN);
  });

  it("should never be in the page for another origin, another site or a rebound host name", async () => {
    for (const headers of <Record<string, string>[]>[
      { host, origin: EVIL },
      { host, origin: "http://127.0.0.1:1" },
      { host, "sec-fetch-site": "cross-site" },
      { host, "sec-fetch-site": "same-site" },
      { host: `evil.example:${new URL(server.baseUrl).port}` },
    ]) {
      const response = await page(headers);
      expect(response.status).toBe(200);
      expect(response.body).toContain("graphiql");
      expect(response.body).not.toContain(DEV_TOKEN);
    }
  });
});
