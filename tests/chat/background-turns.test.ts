import { randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { parseId } from "../../src/lib/ids.js";
import { startFakeCohere, textReply, type FakeCohere } from "../helpers/fake-cohere.js";
import { newUser, type TestServer, type TestUser } from "../helpers/server.js";
import { promiseState } from "../realtime/support.js";
import { ACTIVE_TURN, deferred, SEND_LIVE, twoInstances, type LivePayload } from "./support.js";

const TURN = /* GraphQL */ `
  query Turn($id: ID!) {
    node(id: $id) {
      ... on Turn {
        id
        status
        stopCode
        finishedAt
        userMessage {
          id
        }
        conversation {
          id
          activeTurn {
            id
          }
        }
        messages {
          role
          status
          content
        }
      }
    }
  }
`;

describe("turns that run on without their client", () => {
  let fake: FakeCohere;
  let a: TestServer;
  let b: TestServer;

  beforeAll(async () => {
    fake = await startFakeCohere();
    [a, b] = await twoInstances(fake);
  });
  afterAll(async () => {
    await a.close();
    await b.close();
    await fake.close();
  });

  async function send(server: TestServer, user: TestUser, input: Record<string, unknown>): Promise<LivePayload> {
    const response = await server.request<{ sendMessage: LivePayload }>(SEND_LIVE, { input }, user.token);
    expect(response.errors).toBeUndefined();
    return response.data!.sendMessage;
  }

  it("should answer waitForReply: false once the user message is stored, before the model answers, and finish the turn in the background", async () => {
    const user = await newUser(a);
    const gate = deferred();
    fake.enqueue(textReply("Done in the background.", { gate: { afterDeltas: 0, until: gate.promise } }));
    const requestsBefore = fake.requests.length;

    const started = await send(a, user, { content: "take your time", waitForReply: false });

    expect(started.turn).toMatchObject({ status: "RUNNING", stopCode: null, finishedAt: null, usage: null });
    expect(started.reply).toBeNull();
    expect(started.userMessage).toMatchObject({ seq: 1, content: "take your time", status: "COMPLETE" });
    expect(started.messages.map((m) => [m.role, m.seq])).toEqual([["USER", 1]]);
    // The model has not answered a word: the gate holds its first delta.
    expect(fake.requests.slice(requestsBefore).every((request) => !request.sent.some((event) => event.type === "content-delta"))).toBe(true);
    const active = await user.gql(ACTIVE_TURN, { id: started.conversation.id });
    expect(active.data?.conversation.activeTurn).toEqual({ id: started.turn.id, status: "RUNNING" });

    gate.resolve();
    const ended = await vi.waitFor(
      async () => {
        const response = await user.gql(TURN, { id: started.turn.id });
        expect(response.data?.node?.status, "the background turn's status").not.toBe("RUNNING");
        return response;
      },
      { timeout: 15_000, interval: 20 },
    );
    expect(ended.errors).toBeUndefined();
    expect(ended.data?.node).toMatchObject({
      id: started.turn.id,
      status: "COMPLETED",
      stopCode: null,
      userMessage: { id: started.userMessage.id },
      conversation: { id: started.conversation.id, activeTurn: null },
      messages: [
        { role: "USER", status: "COMPLETE", content: "take your time" },
        { role: "ASSISTANT", status: "COMPLETE", content: "Done in the background." },
      ],
    });
    expect(ended.data?.node.finishedAt).not.toBeNull();
  });

  it("should finish a turn and store its reply when the client of a waitForReply: true request goes away", async () => {
    const user = await newUser(a);
    const gate = deferred();
    fake.enqueue(textReply("Stored although nobody waited.", { gate: { afterDeltas: 2, until: gate.promise } }));
    const requestsBefore = fake.requests.length;
    const abort = new AbortController();
    const request = fetch(a.url, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${user.token}` },
      body: JSON.stringify({ query: SEND_LIVE, variables: { input: { content: "nobody waits" } } }),
      signal: abort.signal,
    });
    request.catch(() => {});
    const turn = await vi.waitFor(
      async () => {
        const row = await a.db.turn.findFirst({ where: { userId: user.id } });
        expect(row, "the turn").not.toBeNull();
        expect(fake.requests.length, "model calls").toBeGreaterThan(requestsBefore);
        return row;
      },
      { timeout: 15_000, interval: 20 },
    );

    abort.abort();
    await expect(request).rejects.toThrow();
    gate.resolve();

    const ended = await vi.waitFor(
      async () => {
        const row = await a.db.turn.findUniqueOrThrow({ where: { id: turn!.id } });
        expect(row.status, "the turn's status").not.toBe("RUNNING");
        return row;
      },
      { timeout: 15_000, interval: 20 },
    );
    expect(ended.status).toBe("COMPLETED");
    const rows = await a.db.message.findMany({ where: { userId: user.id }, orderBy: { seq: "asc" } });
    expect(rows.map((m) => [m.role, m.status, m.content])).toEqual([
      ["user", "COMPLETE", "nobody waits"],
      ["assistant", "COMPLETE", "Stored although nobody waited."],
    ]);
    // The model's stream was read to its end, not cut when the client left.
    expect(fake.requests.at(-1)!.aborted).toBe(false);
  });

  it("should return the RUNNING turn for a retried clientMessageId, never start a second one, and with waitForReply wait for its end on another instance", async () => {
    const user = await newUser(a);
    const clientMessageId = `cm-${randomUUID()}`;
    const gate = deferred();
    fake.enqueue(textReply("Only one of me.", { gate: { afterDeltas: 1, until: gate.promise } }));
    const requestsBefore = fake.requests.length;

    const first = await send(a, user, { content: "once", clientMessageId, waitForReply: false });
    const again = await send(b, user, { content: "once", clientMessageId, waitForReply: false });
    expect(again.turn).toMatchObject({ id: first.turn.id, status: "RUNNING" });
    expect(again.userMessage.id).toBe(first.userMessage.id);

    const waiting = send(b, user, { content: "once", clientMessageId });
    await vi.waitFor(() => expect(fake.requests.length, "model calls").toBeGreaterThan(requestsBefore), { timeout: 15_000, interval: 20 });
    expect(await promiseState(waiting)).toBe("pending");
    gate.resolve();
    const finished = await waiting;

    expect(finished.turn).toMatchObject({ id: first.turn.id, status: "COMPLETED" });
    expect(finished.reply?.content).toBe("Only one of me.");
    expect(fake.requests.length - requestsBefore).toBe(1);
    expect(await a.db.turn.count({ where: { userId: user.id } })).toBe(1);
    expect(await a.db.message.count({ where: { userId: user.id, role: "user" } })).toBe(1);
    expect(parseId(finished.turn.id, "id", "Turn")).toBe((await a.db.turn.findFirstOrThrow({ where: { userId: user.id } })).id);
  });
});
