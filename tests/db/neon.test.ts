import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { configureNeonTransport, createDb, type Db } from "../../src/db/client.js";
import { describeCrud } from "../helpers/crud-scenarios.js";
import { databaseUrl } from "../helpers/db.js";
import { startNeonWsProxy, type NeonWsProxy } from "../helpers/neon-proxy.js";
import { newUser, startTestServer, type TestServer } from "../helpers/server.js";

/**
 * The production driver (@prisma/adapter-neon over @neondatabase/serverless),
 * for real: its WebSockets reach the test database through a loopback relay.
 */
describe("CRUD over the Neon driver through a WebSocket proxy", () => {
  let proxy: NeonWsProxy;
  let db: Db;
  let server: TestServer;
  let target: { host: string; port: number };

  beforeAll(async () => {
    const url = new URL(databaseUrl());
    target = { host: url.hostname, port: Number(url.port || 5432) };
    proxy = await startNeonWsProxy(target);
    configureNeonTransport({ wsProxy: proxy.wsProxy, useSecureWebSocket: false });
    db = createDb({ url: databaseUrl(), driver: "neon", poolSize: 3, connectionTimeoutMs: 5000 });
    server = await startTestServer({ db });
  });
  afterAll(async () => {
    await server?.close();
    await db?.$disconnect();
    await proxy?.close();
  });

  it("should carry the API's queries over the proxy's WebSockets", async () => {
    const alice = await newUser(server, "neon-proxy");
    const before = { ...proxy.stats };
    const added = await alice.gql(`mutation { addTask(input: { title: "Through the proxy" }) { title } }`);
    expect(added.errors).toBeUndefined();
    expect(added.data).toEqual({ addTask: { title: "Through the proxy" } });

    expect(proxy.stats.connections).toBeGreaterThan(0);
    expect(proxy.stats.bytesToServer).toBeGreaterThan(before.bytesToServer);
    expect(proxy.stats.bytesToClient).toBeGreaterThan(before.bytesToClient);
    expect(proxy.stats.requests.every((path) => path.startsWith("/v1"))).toBe(true);
    expect(new Set(proxy.stats.targets)).toEqual(new Set([`${target.host}:${target.port}`]));
  });

  describeCrud("tasks and conversations", () => server);
});
