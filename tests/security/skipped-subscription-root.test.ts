import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { capturingLogger, newUser, startTestServer, type TestServer, type TestUser } from "../helpers/server.js";
import { wsClient, type TestWsClient } from "../helpers/ws-client.js";
import { readSse, within, type SseReader } from "../realtime/support.js";

/** Subscriptions whose one root field would be skipped: graphql-js has no field to subscribe to then. */
const SKIPPED: { query: string; variables?: Record<string, unknown>; names: string }[] = [
  { query: "subscription { taskChanged @skip(if: true) { kind } }", names: "@skip from taskChanged" },
  { query: "subscription { taskChanged @include(if: false) { kind } }", names: "@include from taskChanged" },
  { query: "subscription ($s: Boolean!) { taskChanged @skip(if: $s) { kind } }", variables: { s: true }, names: "@skip from taskChanged" },
  { query: "subscription { ... on Subscription @skip(if: true) { taskChanged { kind } } }", names: "@skip from an inline fragment" },
  {
    query: "subscription { ...Root } fragment Root on Subscription { taskChanged @include(if: false) { kind } }",
    names: "@include from taskChanged",
  },
  {
    query: "subscription Named { ...Root @skip(if: true) } fragment Root on Subscription { taskChanged { kind } }",
    names: "@skip from the fragment spread Root",
  },
];

type ErrorView = { message: string; extensions?: Record<string, unknown> };

function expectRefused(errors: ErrorView[] | undefined, names: string, transport: string): void {
  expect(errors, transport).toHaveLength(1);
  expect(errors?.[0]?.extensions?.code, transport).toBe("BAD_USER_INPUT");
  expect(errors?.[0]?.message, transport).toContain("A subscription's root field cannot be skipped");
  expect(errors?.[0]?.message, transport).toContain(names);
}

describe("a subscription whose root field is skipped", () => {
  let server: TestServer;
  let user: TestUser;
  const captured = capturingLogger();
  const streams: SseReader[] = [];
  const sockets: TestWsClient[] = [];

  beforeAll(async () => {
    server = await startTestServer({ logger: captured.logger });
    user = await newUser(server, "skipped-root");
  });
  afterAll(async () => {
    await Promise.all(streams.map((stream) => stream.cancel()));
    await Promise.all(sockets.map((socket) => socket.dispose()));
    await server?.close();
  });

  function post(body: unknown, accept: string): Promise<Response> {
    const headers = { accept, "content-type": "application/json", authorization: `Bearer ${user.token}` };
    return fetch(server.url, { method: "POST", headers, body: JSON.stringify(body) });
  }

  it("should be a BAD_USER_INPUT validation error over SSE, and the stream completes", async () => {
    for (const { query, variables, names } of SKIPPED) {
      const stream = readSse(await post({ query, variables }, "text/event-stream"));
      streams.push(stream);
      const first = (await stream.next()) as { errors?: ErrorView[]; data?: unknown };
      expectRefused(first.errors, names, `SSE: ${query}`);
      expect(first.data).toBeUndefined();
      await within(stream.ended, 10_000, "the stream to complete");
    }
  });

  it("should be the same error over graphql-ws, and the socket stays usable", async () => {
    const socket = wsClient(server.wsUrl, user.token);
    sockets.push(socket);
    for (const { query, variables, names } of SKIPPED) {
      const sub = socket.subscribe(query, variables);
      const error = await sub.ended.then(
        () => undefined,
        (reason: unknown) => reason as ErrorView[],
      );
      expectRefused(error, names, `graphql-ws: ${query}`);
    }
    // Below the root, @skip works as anywhere else.
    const fine = socket.subscribe("subscription { taskChanged { kind taskId @skip(if: true) } }");
    await user.gql(`mutation { addTask(input: { title: "after the refusals" }) { id } }`);
    expect(await fine.next()).toEqual({ data: { taskChanged: { kind: "CREATED" } } });
    fine.dispose();
  });

  it("should be the same error over plain HTTP", async () => {
    for (const { query, variables, names } of SKIPPED) {
      const response = await post({ query, variables }, "application/graphql-response+json");
      const body = (await response.json()) as { errors?: ErrorView[]; data?: unknown };
      expect(response.status, query).toBe(400);
      expectRefused(body.errors, names, `HTTP: ${query}`);
    }
  });

  it("should log no error and no stack for any of them", () => {
    const errors = captured.lines.filter((line) => (JSON.parse(line) as { level: number }).level >= 50);
    expect(errors).toEqual([]);
    expect(captured.lines.join("\n")).not.toContain("TypeError");
  });
});
