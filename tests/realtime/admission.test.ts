import { randomUUID } from "node:crypto";
import type pg from "pg";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { Admission } from "../../src/realtime/admission.js";
import { StreamEnd } from "../../src/realtime/subscriber.js";
import { databaseUrl } from "../helpers/db.js";
import { newUser, type TestServer, type TestUser } from "../helpers/server.js";
import { tokenFor } from "../helpers/tokens.js";
import type { TestWsClient } from "../helpers/ws-client.js";
import { MESSAGE_STREAM } from "../chat/support.js";
import {
  ADD_TASK,
  adminClient,
  appendVia,
  MESSAGE_ADDED,
  newConversation,
  readSse,
  startLiveServer,
  TASK_CHANGED,
  within,
  type LiveServer,
  insertTurn,
} from "./support.js";

/**
 * One admission path for every subscription (src/realtime/admission.ts):
 * with SUBSCRIPTIONS_PER_USER=3, messageAdded, taskChanged, messageStream,
 * turnUpdated and conversationChanged share the user's three slots, over graphql-ws and SSE alike; a fourth of
 * any kind gets the same RATE_LIMITED error while the three keep delivering;
 * and a slot comes back exactly once, however its subscription ends.
 */

const CAP = 3;
const REFUSED = {
  message: `Too many subscriptions: at most ${CAP} may be open at once per user; end one before starting another`,
  extensions: { code: "RATE_LIMITED", limit: CAP },
};

type Kind = "messageAdded" | "taskChanged" | "messageStream" | "turnUpdated" | "conversationChanged";

const CONVERSATION_CHANGED = /* GraphQL */ `
  subscription {
    conversationChanged {
      kind
      conversationId
      conversation {
        title
      }
    }
  }
`;

const TURN_UPDATED = /* GraphQL */ `
  subscription Turns($conversationId: ID!) {
    turnUpdated(conversationId: $conversationId) {
      id
      status
      userMessage {
        content
      }
    }
  }
`;
type Transport = "ws" | "sse";
type Result = { data?: Record<string, any> | null; errors?: readonly { message: string; extensions?: Record<string, unknown>; path?: unknown }[] };

/** One subscription, whichever its transport. */
interface Open {
  kind: Kind;
  next(timeoutMs?: number): Promise<Result>;
  ended: Promise<void>;
  stop(): Promise<void>;
}

/** A user with a conversation for messageAdded, one with an answer streaming for messageStream, and a socket. */
interface Fixture {
  user: TestUser;
  added: { id: string; globalId: string };
  streamed: { id: string; globalId: string };
  answerId: string;
  client: TestWsClient;
}

function established(server: TestServer): number {
  return server.app.realtime.establishedCount + server.app.streams.establishedCount + server.app.turns.establishedCount;
}

async function fixture(server: LiveServer, admin: pg.Client): Promise<Fixture> {
  const user = await newUser(server, "admission");
  const added = await newConversation(server.db, user.id);
  const streamed = await newConversation(server.db, user.id);
  // An answer being written: messageStream subscribers get each addition to it.
  const { rows } = await admin.query<{ id: string }>(
    `INSERT INTO messages (conversation_id, user_id, role, content, seq, status)
     VALUES ($1, $2, 'assistant', '', 1, 'STREAMING') RETURNING id`,
    [streamed.id, user.id],
  );
  return { user, added, streamed, answerId: rows[0]!.id, client: server.connect(user.token) };
}

function documentOf(kind: Kind, f: Fixture): { query: string; variables?: Record<string, unknown> } {
  if (kind === "messageAdded") return { query: MESSAGE_ADDED, variables: { conversationId: f.added.globalId } };
  if (kind === "messageStream") return { query: MESSAGE_STREAM, variables: { conversationId: f.streamed.globalId } };
  if (kind === "turnUpdated") return { query: TURN_UPDATED, variables: { conversationId: f.added.globalId } };
  if (kind === "conversationChanged") return { query: CONVERSATION_CHANGED };
  return { query: TASK_CHANGED };
}

/** Starts a subscription; it may be admitted or refused. */
async function start(server: TestServer, f: Fixture, kind: Kind, transport: Transport, token = f.user.token): Promise<Open> {
  const { query, variables } = documentOf(kind, f);
  if (transport === "ws") {
    const sub = f.client.subscribe(query, variables);
    return { kind, next: (ms) => sub.next(ms), ended: sub.ended, stop: async () => sub.dispose() };
  }
  const response = await fetch(server.url, {
    method: "POST",
    headers: { accept: "text/event-stream", "content-type": "application/json", authorization: `Bearer ${token}` },
    body: JSON.stringify({ query, variables }),
  });
  expect(response.status).toBe(200);
  const stream = readSse(response);
  return { kind, next: (ms) => stream.next(ms), ended: stream.ended, stop: () => stream.cancel() };
}

/** A subscription that is admitted: resolves once its LISTEN and starting point are in place. */
async function admitted(server: TestServer, f: Fixture, kind: Kind, transport: Transport, token?: string): Promise<Open> {
  const before = established(server);
  const open = await start(server, f, kind, transport, token);
  await vi.waitFor(() => expect(established(server)).toBeGreaterThan(before), { timeout: 10_000, interval: 10 });
  return open;
}

/** A subscription that is refused: its one result is the error, then it completes. Returns the error. */
async function refused(server: TestServer, f: Fixture, kind: Kind, transport: Transport): Promise<unknown> {
  const open = await start(server, f, kind, transport);
  const result = await open.next(10_000);
  await within(open.ended, 10_000, `the refused ${kind} over ${transport} completes`);
  expect(result.data ?? null).toBeNull();
  expect(result.errors).toHaveLength(1);
  // Where it points differs with the document; what it says may not.
  const [{ path, locations: _locations, ...error }] = result.errors as [NonNullable<Result["errors"]>[number] & { locations?: unknown }];
  expect(path).toEqual([kind]);
  return error;
}

/** Commits one change of each kind, tagged with `marker`, and checks every open subscription delivers its own. */
async function expectDelivering(admin: pg.Client, server: TestServer, f: Fixture, opens: readonly Open[]): Promise<void> {
  const marker = `m-${randomUUID()}`;
  await f.user.gql(ADD_TASK, { title: marker });
  const [message] = await appendVia(server.db, f.user.id, f.added.id, [marker]);
  // A turn for it starts: turnUpdated's change.
  await insertTurn(admin, { userId: f.user.id, conversationId: f.added.id, userMessageId: message!.id });
  await admin.query("UPDATE messages SET content = content || $2 WHERE id = $1", [f.answerId, marker]);
  // A rename: conversationChanged's change.
  await admin.query("UPDATE conversations SET title = $2 WHERE id = $1", [f.added.id, marker]);
  for (const open of opens) {
    // A messageStream that joined mid-answer first gets the answer so far: read on to the marker.
    let reads = 0;
    for (;;) {
      const result = await open.next(10_000);
      expect(result.errors).toBeUndefined();
      if (carries(open.kind, result, marker)) break;
      reads += 1;
      expect(reads, `${open.kind} delivers the change tagged ${marker}`).toBeLessThan(20);
    }
  }
}

function carries(kind: Kind, result: Result, marker: string): boolean {
  const data = result.data ?? {};
  if (kind === "taskChanged") return data.taskChanged?.task?.title === marker;
  if (kind === "messageAdded") return data.messageAdded?.content === marker;
  if (kind === "turnUpdated") return data.turnUpdated?.userMessage?.content === marker;
  if (kind === "conversationChanged") return data.conversationChanged?.conversation?.title === marker;
  return typeof data.messageStream?.message?.content === "string" && data.messageStream.message.content.endsWith(marker);
}

describe("one admission path for every subscription (SUBSCRIPTIONS_PER_USER=3)", () => {
  let server: LiveServer;
  let admin: pg.Client;
  const opened: Open[] = [];

  async function admit(f: Fixture, kind: Kind, transport: Transport, token?: string): Promise<Open> {
    const open = await admitted(server, f, kind, transport, token);
    opened.push(open);
    return open;
  }

  beforeAll(async () => {
    server = await startLiveServer({ realtime: { subscriptionsPerUser: CAP } });
    admin = await adminClient(databaseUrl());
  });
  afterAll(async () => {
    await Promise.all(opened.map((open) => open.stop()));
    await server.close();
    await admin.end();
  });

  it.each<Kind>(["messageAdded", "taskChanged", "messageStream", "turnUpdated", "conversationChanged"])(
    "should refuse a fourth %s after three of the same kind with the one RATE_LIMITED error, while the three keep delivering",
    async (kind) => {
      const f = await fixture(server, admin);
      const three = [await admit(f, kind, "ws"), await admit(f, kind, "sse"), await admit(f, kind, "ws")];
      expect(await refused(server, f, kind, "ws")).toEqual(REFUSED);
      expect(await refused(server, f, kind, "sse")).toEqual(REFUSED);
      expect(server.app.realtime.admission.heldBy(f.user.id)).toBe(CAP);
      await expectDelivering(admin, server, f, three);
    },
  );

  it.each<[string, [Kind, Transport][]]>([
    [
      "one of each kind",
      [
        ["messageAdded", "ws"],
        ["taskChanged", "sse"],
        ["messageStream", "ws"],
      ],
    ],
    [
      "two messageStreams and a taskChanged",
      [
        ["messageStream", "sse"],
        ["messageStream", "ws"],
        ["taskChanged", "ws"],
      ],
    ],
    [
      "two messageAdded and a messageStream",
      [
        ["messageAdded", "ws"],
        ["messageAdded", "sse"],
        ["messageStream", "sse"],
      ],
    ],
    [
      "two taskChanged and a messageAdded",
      [
        ["taskChanged", "ws"],
        ["taskChanged", "sse"],
        ["messageAdded", "ws"],
      ],
    ],
    [
      "a conversationChanged, a turnUpdated and a messageAdded",
      [
        ["conversationChanged", "sse"],
        ["turnUpdated", "ws"],
        ["messageAdded", "ws"],
      ],
    ],
    [
      "a turnUpdated, a messageStream and a taskChanged",
      [
        ["turnUpdated", "sse"],
        ["messageStream", "ws"],
        ["taskChanged", "ws"],
      ],
    ],
  ])("should refuse a fourth subscription of any kind, over either transport, with %s open, and keep the three delivering", async (_name, mix) => {
    const f = await fixture(server, admin);
    const three: Open[] = [];
    for (const [kind, transport] of mix) three.push(await admit(f, kind, transport));
    for (const kind of ["messageStream", "messageAdded", "taskChanged", "turnUpdated", "conversationChanged"] as const) {
      for (const transport of ["ws", "sse"] as const) expect(await refused(server, f, kind, transport)).toEqual(REFUSED);
    }
    expect(server.app.realtime.admission.heldBy(f.user.id)).toBe(CAP);
    await expectDelivering(admin, server, f, three);
  });

  it("should not count another user's subscriptions", async () => {
    const f = await fixture(server, admin);
    const g = await fixture(server, admin);
    for (const kind of ["messageStream", "messageAdded", "taskChanged"] as const) await admit(f, kind, "ws");
    const theirs = [await admit(g, "messageStream", "ws"), await admit(g, "messageAdded", "sse"), await admit(g, "taskChanged", "ws")];
    expect(await refused(server, g, "messageStream", "ws")).toEqual(REFUSED);
    await expectDelivering(admin, server, g, theirs);
  });

  type Ending = [string, Transport, (open: Open, f: Fixture) => Promise<unknown>];
  it.each<Ending>([
    ["the graphql-ws client stops it", "ws", (open) => open.stop()],
    ["the SSE client goes away", "sse", (open) => open.stop()],
    ["its socket closes", "ws", (_open, f) => f.client.dispose()],
  ])("should give a messageStream's slot back once when %s: one more is admitted, and then none", async (_name, transport, end) => {
    const f = await fixture(server, admin);
    const ending = await admit(f, "messageStream", transport);
    // Another socket for the ones that stay: closing the first must not end them.
    const staying = { ...f, client: server.connect(f.user.token) };
    const two = [await admit(staying, "taskChanged", "ws"), await admit(staying, "messageAdded", "sse")];
    expect(await refused(server, staying, "messageStream", "ws")).toEqual(REFUSED);

    await end(ending, f);
    await vi.waitFor(() => expect(server.app.realtime.admission.heldBy(f.user.id)).toBe(CAP - 1), { timeout: 10_000, interval: 10 });
    const again = await admit(staying, "messageStream", "ws");
    expect(await refused(server, staying, "taskChanged", "sse")).toEqual(REFUSED);
    expect(await refused(server, staying, "messageStream", "ws")).toEqual(REFUSED);
    expect(server.app.realtime.admission.heldBy(f.user.id)).toBe(CAP);
    await expectDelivering(admin, server, staying, [...two, again]);
  });

  it("should give a slot back once when the server completes the stream (the token expires)", async () => {
    const f = await fixture(server, admin);
    const expiring = await admit(f, "messageStream", "sse", await tokenFor(f.user.id, { expiresIn: "2s" }));
    const two = [await admit(f, "taskChanged", "ws"), await admit(f, "messageAdded", "ws")];
    expect(await refused(server, f, "messageAdded", "sse")).toEqual(REFUSED);
    await within(expiring.ended, 15_000, "the stream completes at expiry");
    await vi.waitFor(() => expect(server.app.realtime.admission.heldBy(f.user.id)).toBe(CAP - 1), { timeout: 10_000, interval: 10 });
    const again = await admit(f, "messageStream", "sse");
    expect(await refused(server, f, "messageStream", "ws")).toEqual(REFUSED);
    await expectDelivering(admin, server, f, [...two, again]);
  });
});

describe("the drain", () => {
  it("should give back every slot when the server drains its subscriptions", async () => {
    const server = await startLiveServer({ realtime: { subscriptionsPerUser: CAP } });
    const admin = await adminClient(databaseUrl());
    try {
      const f = await fixture(server, admin);
      const opens = [
        await admitted(server, f, "messageStream", "ws"),
        await admitted(server, f, "taskChanged", "sse"),
        await admitted(server, f, "messageAdded", "ws"),
      ];
      expect(server.app.realtime.admission.openCount).toBe(CAP);
      await server.app.stop();
      await vi.waitFor(() => expect(server.app.realtime.admission.openCount).toBe(0), { timeout: 10_000, interval: 10 });
      await Promise.all(opens.map((open) => open.stop()));
    } finally {
      await server.close().catch(() => {});
      await admin.end();
    }
  });
});

describe("the admission path itself", () => {
  const options = { limit: 10, overflowError: () => new Error("overflow") };

  it("should give the slot back once when the stream's open fails after admission, and end it with that error", async () => {
    const admission = new Admission(1);
    const failure = new Error("the feed could not start");
    const stream = admission.stream<string>("u", options, async () => {
      expect(admission.heldBy("u")).toBe(1);
      throw failure;
    });
    const first = await stream.next();
    expect(first.value).toBeInstanceOf(StreamEnd);
    expect((first.value as StreamEnd).error).toBe(failure);
    expect((await stream.next()).done).toBe(true);
    expect(admission.heldBy("u")).toBe(0);
    expect(admission.openCount).toBe(0);
  });

  it("should take no slot for a stream stopped before its first pull, and free a slot once however often its release runs", async () => {
    const admission = new Admission(2);
    const unopened = admission.stream<string>("u", options, async () => {});
    await unopened.return?.();
    expect(admission.heldBy("u")).toBe(0);

    const release = admission.take("u");
    admission.take("u");
    expect(() => admission.take("u")).toThrow(expect.objectContaining({ code: "RATE_LIMITED" }));
    release();
    release();
    expect(admission.heldBy("u")).toBe(1);
    admission.take("u");
    expect(() => admission.take("u")).toThrow(expect.objectContaining({ code: "RATE_LIMITED" }));
    expect(admission.heldBy("other")).toBe(0);
  });

  it("should give the slot back once when the consumer returns, and when the stream ends itself", async () => {
    const admission = new Admission(1);
    const returned = admission.stream<string>("u", options, async (outlet) => void outlet.push("one"));
    expect((await returned.next()).value).toBe("one");
    expect(admission.heldBy("u")).toBe(1);
    await returned.return?.();
    await returned.return?.();
    expect(admission.heldBy("u")).toBe(0);

    const ended = admission.stream<string>("u", options, async (outlet) => {
      outlet.push("last");
      outlet.end();
      outlet.end(new Error("again"));
    });
    expect((await ended.next()).value).toBe("last");
    expect((await ended.next()).done).toBe(true);
    expect(admission.heldBy("u")).toBe(0);
    expect(admission.openCount).toBe(0);
  });
});
