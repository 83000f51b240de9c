import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { WebSocket } from "ws";
import { ErrorCode } from "../../src/lib/errors.js";
import { toGlobalId } from "../../src/lib/ids.js";
import { newUser, startTestServer, type TestServer, type TestUser } from "../helpers/server.js";

/**
 * Property-based fuzzing of both front doors. Every answer must be well formed
 * — a GraphQL error with a known code, or a protocol close code — and nothing
 * internal may leak; the server stays up and its memory bounded. Counts are
 * fixed (10,000 inputs in all); speed is never asserted.
 */
const HTTP_RUNS = 8000;
const WS_RUNS = 2000;
const BATCH = 25;
const KNOWN_CODES = new Set<string>(Object.values(ErrorCode));
const HTTP_STATUSES = new Set([200, 400, 401, 405, 413, 415]);
/** graphql-ws close codes, plus 1000/1001 and ws' own for invalid frames and oversize messages. */
const WS_CLOSE_CODES = new Set([1000, 1001, 1002, 1003, 1007, 1009, 4400, 4401, 4403, 4406, 4408, 4409, 4429, 4499, 4500]);
/** A stack frame ("at fn (file:1:2)", raw or JSON-escaped), or names that only internals carry. */
const LEAK = /\bat [\w.<>]+ \(.*:\d+:\d+\)|\\n\s+at\s|prisma|invocation|ECONNREFUSED|node_modules|\.ts:\d|\bSELECT\b.+\bFROM\b/i;

const FIELDS = [
  "tasks",
  "task",
  "node",
  "conversations",
  "conversation",
  "addTask",
  "updateTask",
  "completeTask",
  "deleteTask",
  "sendMessage",
  "__schema",
  "__typename",
  "edges",
  "id",
  "title",
  "x",
];
const TYPES = ["Task", "Conversation", "Message", "User", "", "Task:"];

const oddString = fc.oneof(
  fc.string({ unit: "grapheme", maxLength: 40 }),
  fc.string({ unit: "binary", maxLength: 40 }),
  fc.constantFrom("\u0000", "\uD800", "\uFEFF", "🧾".repeat(300), "x".repeat(5001), "'; DROP TABLE tasks; --", "%E0%A4%A", "${}"),
);

const globalId = fc.oneof(
  fc.tuple(fc.constantFrom(...TYPES), fc.uuid()).map(([type, id]) => toGlobalId(type as never, id)),
  fc.string({ maxLength: 60 }),
  fc.base64String({ maxLength: 60 }),
);

const argValue: fc.Arbitrary<unknown> = fc.oneof(
  oddString,
  globalId,
  fc.integer(),
  fc.double(),
  fc.boolean(),
  fc.constant(null),
  fc.array(fc.integer(), { maxLength: 3 }),
);

/** Documents that are almost GraphQL: real and unknown fields, nesting, wrong argument types, junk. */
const document: fc.Arbitrary<string> = fc
  .letrec<{ selection: string }>((tie) => ({
    selection: fc.oneof(
      { depthSize: "small", withCrossShrink: true },
      fc.constantFrom(...FIELDS),
      fc
        .tuple(fc.constantFrom(...FIELDS), fc.constantFrom("first", "last", "id", "after", "status", "input"), argValue, tie("selection"))
        .map(([field, arg, value, inner]) => `${field}(${arg}: ${JSON.stringify(value)}) { ${inner} }`),
      fc.tuple(fc.constantFrom(...FIELDS), tie("selection")).map(([field, inner]) => `${field} { ${inner} }`),
    ),
  }))
  .selection.chain((selection) =>
    fc.oneof(
      fc.constant(`{ ${selection} }`),
      fc.constant(`mutation { ${selection} }`),
      fc.constant(`subscription { ${selection} }`),
      fc.constant(`query Q($v: ID) { ${selection} }`),
      fc.string({ maxLength: 80 }),
      fc.constant("{".repeat(300)),
    ),
  );

const body: fc.Arbitrary<string | Uint8Array> = fc.oneof(
  fc
    .record({
      query: document,
      variables: fc.option(fc.dictionary(fc.string({ maxLength: 8 }), argValue, { maxKeys: 3 })),
      operationName: fc.option(oddString),
    })
    .map((b) => JSON.stringify(b)),
  fc.json({ maxDepth: 4 }),
  fc.jsonValue({ maxDepth: 3 }).map((value) => JSON.stringify({ query: value })),
  fc.uint8Array({ maxLength: 200 }),
  fc.constant(JSON.stringify({ query: `{ ${"tasks { edges { node { id } } } ".repeat(3)} }` })),
);

describe("fuzzing", () => {
  let server: TestServer;
  let user: TestUser;

  beforeAll(async () => {
    server = await startTestServer();
    user = await newUser(server, "fuzz");
  });
  afterAll(async () => {
    await server?.close();
  });

  async function checkHttp(payload: string | Uint8Array, withToken: boolean, contentType: string): Promise<void> {
    const headers: Record<string, string> = { "content-type": contentType, accept: "application/graphql-response+json, application/json" };
    if (withToken) headers.authorization = `Bearer ${user.token}`;
    const response = await fetch(server.url, { method: "POST", headers, body: typeof payload === "string" ? payload : Buffer.from(payload) });
    const text = await response.text();
    expect(HTTP_STATUSES.has(response.status), `status ${response.status} for ${String(payload).slice(0, 200)}`).toBe(true);
    expect(text).not.toMatch(LEAK);
    const parsed = JSON.parse(text) as { errors?: { extensions?: { code?: string } }[] };
    for (const error of parsed.errors ?? []) {
      expect(KNOWN_CODES.has(error.extensions?.code ?? ""), `code ${error.extensions?.code} in ${text.slice(0, 300)}`).toBe(true);
    }
  }

  it(`should answer ${HTTP_RUNS} generated HTTP requests well formed, with known codes and no leak`, async () => {
    const rssBefore = process.memoryUsage().rss;
    const samples = fc.sample(
      fc.tuple(body, fc.boolean(), fc.constantFrom("application/json", "application/json", "application/json", "text/plain")),
      { numRuns: HTTP_RUNS, seed: 20261127 },
    );
    for (let i = 0; i < samples.length; i += BATCH) {
      await Promise.all(samples.slice(i, i + BATCH).map(([payload, withToken, type]) => checkHttp(payload, withToken, type)));
    }
    expect((await fetch(`${server.baseUrl}/health`)).status).toBe(200);
    const still = await user.gql(`{ tasks(first: 1) { edges { node { id } } } }`);
    expect(still.errors).toBeUndefined();
    // Bounded, not timed: the server runs in this process, so this is its memory too.
    expect(process.memoryUsage().rss - rssBefore).toBeLessThan(400 * 1024 * 1024);
  }, 300_000);

  const wsMessage = fc.oneof(
    fc.constant({ type: "connection_init", payload: { authorization: "Bearer TOKEN" } }),
    fc.constant({ type: "connection_init", payload: {} }),
    fc.constant({ type: "ping" }),
    fc.constant({ type: "pong" }),
    fc.record({ type: fc.constant("subscribe"), id: fc.constantFrom("1", "2", ""), payload: fc.record({ query: document }) }),
    fc.record({ type: fc.constant("complete"), id: fc.constantFrom("1", "9") }),
    fc.record({ type: oddString, id: fc.option(oddString) }),
    fc.jsonValue({ maxDepth: 2 }),
  );

  /** Sends a random sequence, then reports the close code, or "open" if the server kept the socket. */
  function runSocket(messages: unknown[], raw: string | undefined): Promise<number | "open"> {
    return new Promise((resolve) => {
      const socket = new WebSocket(server.wsUrl, "graphql-transport-ws");
      const timer = setTimeout(() => {
        socket.terminate();
        resolve("open");
      }, 500);
      socket.on("open", () => {
        for (const message of messages) socket.send(JSON.stringify(message).replace("Bearer TOKEN", `Bearer ${user.token}`));
        if (raw !== undefined) socket.send(raw);
      });
      socket.on("message", (data) => {
        const text = String(data);
        expect(text).not.toMatch(LEAK);
        const parsed = JSON.parse(text) as { type: string };
        expect(["connection_ack", "next", "error", "complete", "ping", "pong"]).toContain(parsed.type);
      });
      socket.on("close", (code) => {
        clearTimeout(timer);
        resolve(code);
      });
      socket.on("error", () => {});
    });
  }

  it(`should answer ${WS_RUNS} generated graphql-ws sessions, in and out of order, with protocol messages or close codes`, async () => {
    const samples = fc.sample(fc.tuple(fc.array(wsMessage, { maxLength: 6 }), fc.option(fc.string({ maxLength: 30 }))), {
      numRuns: WS_RUNS,
      seed: 27112026,
    });
    const outcomes = new Map<string, number>();
    for (let i = 0; i < samples.length; i += BATCH * 4) {
      const results = await Promise.all(samples.slice(i, i + BATCH * 4).map(([messages, raw]) => runSocket(messages, raw ?? undefined)));
      for (const result of results) {
        if (result !== "open") expect(WS_CLOSE_CODES.has(result), `close code ${result}`).toBe(true);
        outcomes.set(String(result), (outcomes.get(String(result)) ?? 0) + 1);
      }
    }
    expect([...outcomes.values()].reduce((a, b) => a + b, 0)).toBe(WS_RUNS);
    expect((await fetch(`${server.baseUrl}/health`)).status).toBe(200);
  }, 300_000);
});
