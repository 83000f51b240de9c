import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import { newUser, startTestServer, type TestServer } from "../helpers/server.js";
import { openRaw, openRawOrFail, type RawSocket } from "../helpers/raw-ws.js";

const TASKS = "{ tasks(first: 1) { edges { node { id } } } }";
/** WS_CONNECTIONS_PER_USER's documented default. */
const PER_USER = 30;

/**
 * Finding 3 of issue 20: one user's token opened 21,000 idle graphql-ws
 * sockets, the process ran out of file descriptors, /health reset and another
 * user's query failed. Sockets are now counted from their upgrade: per user
 * (WS_CONNECTIONS_PER_USER), per address while unauthenticated
 * (WS_UNAUTHENTICATED_PER_ADDRESS) and in the whole process (WS_MAX_CONNECTIONS).
 */
describe("WebSocket connection caps", () => {
  const opened: RawSocket[] = [];
  const track = (raw: RawSocket) => (opened.push(raw), raw);
  /** The HTTP status that refused an upgrade, or "accepted". */
  const upgrade = async (url: string) => {
    const outcome = await openRaw(url);
    if ("refused" in outcome) return outcome;
    track(outcome);
    return "accepted";
  };
  afterEach(() => {
    for (const raw of opened.splice(0)) raw.socket.terminate();
  });

  describe("with the default settings", () => {
    let server: TestServer;
    beforeAll(async () => {
      server = await startTestServer();
    });
    afterAll(async () => {
      await server?.close();
    });

    it(`should close a user's socket past WS_CONNECTIONS_PER_USER (${PER_USER}) with 1008 while another user connects and /health answers`, async () => {
      const cap = PER_USER;
      const greedy = await newUser(server, "ws-greedy");
      const sockets: RawSocket[] = [];
      for (let i = 0; i < cap; i += 1) {
        const raw = track(await openRawOrFail(server.wsUrl));
        expect(await raw.init(greedy.token)).toBe("ack");
        sockets.push(raw);
      }

      const refused = track(await openRawOrFail(server.wsUrl));
      const outcome = await refused.init(greedy.token);
      expect(outcome).toEqual({ code: 1008, reason: `Too many connections: at most ${cap} per user (WS_CONNECTIONS_PER_USER)` });
      expect(server.app.ws.connectionsOf(greedy.id)).toBe(cap);

      // Another user is not affected, over WebSocket or HTTP, and /health answers.
      const other = await newUser(server, "ws-other");
      const theirs = track(await openRawOrFail(server.wsUrl));
      expect(await theirs.init(other.token)).toBe("ack");
      theirs.send({ id: "1", type: "subscribe", payload: { query: TASKS } });
      await vi.waitFor(
        () =>
          expect(
            theirs.messages.map((m) => m.type),
            "the other user's messages",
          ).toContain("complete"),
        { timeout: 15_000, interval: 10 },
      );
      expect(theirs.messages.find((m) => m.type === "next")?.payload).toEqual({ data: { tasks: { edges: [] } } });
      expect((await other.gql(TASKS)).data).toEqual({ tasks: { edges: [] } });
      expect((await fetch(`${server.baseUrl}/health`)).status).toBe(200);

      // Closing sockets makes room again; every count falls back when all are gone.
      for (const raw of sockets.slice(0, 5)) raw.socket.close();
      await vi.waitFor(() => expect(server.app.ws.connectionsOf(greedy.id), "the user's sockets").toBe(cap - 5), { timeout: 15_000, interval: 10 });
      const again = track(await openRawOrFail(server.wsUrl));
      expect(await again.init(greedy.token)).toBe("ack");
      for (const raw of [...sockets, again, theirs]) raw.socket.close();
      await vi.waitFor(() => expect(server.app.ws.stats().connections, "connections").toBe(0), { timeout: 15_000, interval: 10 });
      expect(server.app.ws.stats()).toMatchObject({ connections: 0, unauthenticated: 0, users: 0 });
    });

    it("should close a socket that never sends connection_init after the init timeout (4408), and stop counting it", async () => {
      const silent = track(await openRawOrFail(server.wsUrl));
      await vi.waitFor(() => expect(server.app.ws.stats().unauthenticated, "unauthenticated sockets").toBe(1), { timeout: 15_000, interval: 10 });
      expect(await silent.closed).toEqual({ code: 4408, reason: "Connection initialisation timeout" });
      await vi.waitFor(() => expect(server.app.ws.stats().connections, "connections").toBe(0), { timeout: 15_000, interval: 10 });
    });
  });

  describe("with small caps", () => {
    let server: TestServer;
    beforeAll(async () => {
      server = await startTestServer({ ws: { unauthenticatedPerAddress: 10, maxConnections: 25, connectionsPerUser: 100 } });
    });
    afterAll(async () => {
      await server?.close();
    });

    it("should count a socket from its upgrade, before connection_init, and refuse an address past WS_UNAUTHENTICATED_PER_ADDRESS with 429", async () => {
      const user = await newUser(server, "ws-pending");
      const pending: RawSocket[] = [];
      for (let i = 0; i < 10; i += 1) pending.push(track(await openRawOrFail(server.wsUrl)));

      // Even a socket that would authenticate is not let in from this address until one of them goes.
      expect(await upgrade(server.wsUrl)).toEqual({ refused: 429 });
      expect(server.app.ws.stats()).toMatchObject({ connections: 10, unauthenticated: 10 });
      expect((await fetch(`${server.baseUrl}/health`)).status).toBe(200);

      // An authenticated socket no longer counts against its address.
      expect(await pending[0]!.init(user.token)).toBe("ack");
      expect(server.app.ws.stats()).toMatchObject({ connections: 10, unauthenticated: 9 });
      const next = track(await openRawOrFail(server.wsUrl));
      expect(await next.init(user.token)).toBe("ack");

      for (const raw of [...pending, next]) raw.socket.close();
      await vi.waitFor(() => expect(server.app.ws.stats().connections, "connections").toBe(0), { timeout: 15_000, interval: 10 });
    });

    it("should refuse upgrades past WS_MAX_CONNECTIONS with 503 while /health and another user's query answer", async () => {
      const users = await Promise.all(Array.from({ length: 5 }, (_, i) => newUser(server, `ws-full-${i}`)));
      const sockets: RawSocket[] = [];
      for (let i = 0; i < 25; i += 1) {
        const raw = track(await openRawOrFail(server.wsUrl));
        expect(await raw.init(users[i % users.length]!.token)).toBe("ack");
        sockets.push(raw);
      }

      expect(await upgrade(server.wsUrl)).toEqual({ refused: 503 });
      expect(server.app.ws.stats()).toMatchObject({ connections: 25, maxConnections: 25 });
      expect((await fetch(`${server.baseUrl}/health`)).status).toBe(200);
      const outsider = await newUser(server, "ws-outsider");
      expect((await outsider.gql(TASKS)).data).toEqual({ tasks: { edges: [] } });

      sockets[0]!.socket.close();
      await vi.waitFor(() => expect(server.app.ws.stats().connections, "connections").toBe(24), { timeout: 15_000, interval: 10 });
      const again = track(await openRawOrFail(server.wsUrl));
      expect(await again.init(outsider.token)).toBe("ack");
      for (const raw of [...sockets, again]) raw.socket.close();
      await vi.waitFor(() => expect(server.app.ws.stats().connections, "connections").toBe(0), { timeout: 15_000, interval: 10 });
    });
  });
});
