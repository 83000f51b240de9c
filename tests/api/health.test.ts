import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createDb, type Db } from "../../src/db/client.js";
import { freePort } from "../../src/db/embedded.js";
import { capturingLogger, startTestServer, type TestServer } from "../helpers/server.js";

describe("health and readiness", () => {
  let server: TestServer;
  let unreachable: TestServer;
  let unreachableDb: Db;
  let unreachablePort: number;
  const captured = capturingLogger();

  beforeAll(async () => {
    // This case is about reachability, not the probe's latency: a fresh pool's first
    // connection can take longer than the 2 s default on a loaded 2-core CI machine.
    server = await startTestServer({ readyTimeoutMs: 10_000 });
    // A loopback port nothing listens on: connecting is refused at once.
    unreachablePort = await freePort();
    unreachableDb = createDb({
      // A made-up credential that must never show up in an answer (secretlint: not a real one).
      url: `postgresql://app:not-the-password@127.0.0.1:${unreachablePort}/nowhere`, // secretlint-disable-line
      driver: "pg",
      poolSize: 1,
      connectionTimeoutMs: 500,
    });
    unreachable = await startTestServer({ db: unreachableDb, logger: captured.logger });
  });

  afterAll(async () => {
    await server?.close();
    await unreachable?.close();
    await unreachableDb?.$disconnect();
  });

  it("should answer GET /health with 200", async () => {
    const response = await fetch(`${server.baseUrl}/health`);
    expect(response.status).toBe(200);
  });

  it("should answer GET /ready with 200 when the database is reachable", async () => {
    const response = await fetch(`${server.baseUrl}/ready`);
    expect(response.status).toBe(200);
  });

  it("should answer GET /health with 200 even when the database is unreachable", async () => {
    const response = await fetch(`${unreachable.baseUrl}/health`);
    expect(response.status).toBe(200);
  });

  it("should answer GET /ready with 503 and no internal detail when the database is unreachable", async () => {
    const response = await fetch(`${unreachable.baseUrl}/ready`);
    expect(response.status).toBe(503);
    const body = await response.text();
    for (const detail of ["prisma", "queryRaw", "127.0.0.1", String(unreachablePort), "ECONNREFUSED", "reach", "nowhere"]) {
      expect(body.toLowerCase()).not.toContain(detail.toLowerCase());
    }
    // The reason is in the log instead.
    const logged = captured.lines.map((line) => JSON.parse(line) as { msg: string; err?: { message?: string } });
    const failure = logged.find((entry) => entry.msg === "readiness check failed");
    expect(failure?.err?.message).toContain(`127.0.0.1:${unreachablePort}`);
  });
});

describe("GraphiQL", () => {
  let withGraphiql: TestServer;
  let withoutGraphiql: TestServer;

  beforeAll(async () => {
    withGraphiql = await startTestServer({ graphiql: {} });
    withoutGraphiql = await startTestServer({ graphiql: false });
  });

  afterAll(async () => {
    await withGraphiql?.close();
    await withoutGraphiql?.close();
  });

  it("should serve GraphiQL at GET /graphql, explaining the Authorization header, when enabled", async () => {
    const response = await fetch(withGraphiql.url, { headers: { accept: "text/html" } });
    expect(response.status).toBe(200);
    expect(response.headers.get("content-type")).toMatch(/^text\/html/);
    const body = await response.text();
    expect(body).toMatch(/<html/i);
    expect(body).toContain("Authorization");
  });

  it("should load GraphiQL's bundle from this server, not from a CDN", async () => {
    const page = await (await fetch(withGraphiql.url, { headers: { accept: "text/html" } })).text();
    expect(page).not.toContain("unpkg.com");
    const assets = [...page.matchAll(/\/graphiql\/assets\/[\w./-]+/g)].map((match) => match[0]);
    expect(assets).toEqual(expect.arrayContaining(["/graphiql/assets/yoga-graphiql.umd.js", "/graphiql/assets/graphiql.css"]));
    for (const asset of new Set(assets)) {
      const response = await fetch(`${withGraphiql.baseUrl}${asset}`);
      expect(response.status, asset).toBe(200);
      expect((await response.arrayBuffer()).byteLength, asset).toBeGreaterThan(1000);
    }
    const script = await fetch(`${withGraphiql.baseUrl}/graphiql/assets/yoga-graphiql.umd.js`);
    expect(script.headers.get("content-type")).toMatch(/^text\/javascript/);
  });

  it("should serve nothing but the GraphiQL bundle under its assets path", async () => {
    for (const path of ["/graphiql/assets/package.json", "/graphiql/assets/..%2Fpackage.json", "/graphiql/assets/yoga-graphiql.es.js"]) {
      expect((await fetch(`${withGraphiql.baseUrl}${path}`)).status, path).toBe(404);
    }
    expect((await fetch(`${withoutGraphiql.baseUrl}/graphiql/assets/yoga-graphiql.umd.js`)).status).not.toBe(200);
  });

  it("should not serve GraphiQL when disabled", async () => {
    const response = await fetch(withoutGraphiql.url, { headers: { accept: "text/html" } });
    expect(response.status).not.toBe(200);
    expect(response.headers.get("content-type") ?? "").not.toMatch(/text\/html/);
    const body = await response.text();
    expect(body).not.toMatch(/<html/i);
    expect(body.toLowerCase()).not.toContain("graphiql");
  });
});

describe("request ids", () => {
  let server: TestServer;
  let lines: string[];
  beforeAll(async () => {
    const captured = capturingLogger();
    lines = captured.lines;
    server = await startTestServer({ logger: captured.logger });
  });
  afterAll(async () => {
    await server.close();
  });

  it("should echo a sane X-Request-Id and put it on every log line of that request", async () => {
    const response = await fetch(`${server.baseUrl}/health`, { headers: { "x-request-id": "req-abc.123" } });
    expect(response.status).toBe(200);
    expect(response.headers.get("x-request-id")).toBe("req-abc.123");
    const logged = lines.map((line) => JSON.parse(line) as { msg: string; requestId?: string; path?: string });
    expect(logged.some((line) => line.msg === "request" && line.requestId === "req-abc.123" && line.path === "/health")).toBe(true);
  });

  it("should replace an unusable X-Request-Id with a fresh one", async () => {
    const response = await fetch(`${server.baseUrl}/health`, { headers: { "x-request-id": "bad id with spaces" } });
    const id = response.headers.get("x-request-id");
    expect(id).toMatch(/^[0-9a-f-]{36}$/);
  });
});
