import { randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { toGlobalId } from "../../src/lib/ids.js";
import { startFakeCohere, textReply, toolCallReply, wordChunks, type FakeCohere } from "../helpers/fake-cohere.js";
import { newUser, type TestServer, type TestUser } from "../helpers/server.js";
import { wsClient, type TestWsClient } from "../helpers/ws-client.js";
import {
  CANCEL_TURN,
  deferred,
  eventsUntilSettled,
  joined,
  liveStream,
  SEND_LIVE,
  twoInstances,
  type LivePayload,
  type TurnView,
} from "./support.js";

const LONG_ANSWER = "Let me think about all of your tasks one by one, starting with the oldest and most urgent ones first.";

interface CancelledTurn extends Omit<TurnView, "usage" | "startedAt"> {
  messages: { id: string; role: string; status: string; content: string }[];
}

describe("cancelTurn", () => {
  let fake: FakeCohere;
  /** `a` runs the turns; cancels come through `b`, another instance on the same database. */
  let a: TestServer;
  let b: TestServer;
  const clients: TestWsClient[] = [];

  beforeAll(async () => {
    fake = await startFakeCohere();
    [a, b] = await twoInstances(fake);
  });
  afterAll(async () => {
    await Promise.all(clients.map((client) => client.dispose()));
    await a.close();
    await b.close();
    await fake.close();
  });

  function send(server: TestServer, user: TestUser, input: Record<string, unknown>) {
    return server.request<{ sendMessage: LivePayload }>(SEND_LIVE, { input }, user.token);
  }

  async function cancel(server: TestServer, user: TestUser, id: string): Promise<CancelledTurn> {
    const response = await server.request<{ cancelTurn: CancelledTurn }>(CANCEL_TURN, { id }, user.token);
    expect(response.errors).toBeUndefined();
    return response.data!.cancelTurn;
  }

  it("should stop a turn running on another instance mid-answer, keep the partial answer CANCELLED and close the model's stream", async () => {
    const user = await newUser(a);
    const created = await user.gql<{ createConversation: { id: string } }>(`mutation { createConversation { id } }`);
    const conversationId = created.data!.createConversation.id;
    const client = wsClient(b.wsUrl, user.token);
    clients.push(client);
    const stream = await liveStream(b, client, conversationId);
    const addedBefore = b.app.realtime.establishedCount;
    const added = client.subscribe(`subscription A($c: ID) { messageAdded(conversationId: $c) { id role status content } }`, { c: conversationId });
    await vi.waitFor(() => expect(b.app.realtime.establishedCount, "established subscriptions").toBeGreaterThan(addedBefore), {
      timeout: 10_000,
      interval: 10,
    });
    const chunks = wordChunks(LONG_ANSWER);
    const never = deferred();
    fake.enqueue(textReply(LONG_ANSWER, { chunks, gate: { afterDeltas: 6, until: never.promise } }));
    const prefix = chunks.slice(0, 6).join("");

    // The sender waits for the reply on `a`.
    const sending = send(a, user, { conversationId, content: "think hard" });
    const partial = await vi.waitFor(
      async () => {
        const row = await a.db.message.findFirst({ where: { userId: user.id, role: "assistant" } });
        expect(row?.content, "the answer written so far").toBe(prefix);
        return row;
      },
      { timeout: 15_000, interval: 20 },
    );
    const turn = await a.db.turn.findFirstOrThrow({ where: { userId: user.id } });

    const cancelled = await cancel(b, user, toGlobalId("Turn", turn.id));

    // Ended by the time cancelTurn answers.
    expect(cancelled).toMatchObject({ status: "CANCELLED", stopCode: "CANCELLED" });
    expect(cancelled.finishedAt).not.toBeNull();
    expect(cancelled.messages.map((m) => [m.role, m.status, m.content])).toEqual([
      ["USER", "COMPLETE", "think hard"],
      ["ASSISTANT", "CANCELLED", prefix],
    ]);
    expect(await a.db.message.findUniqueOrThrow({ where: { id: partial!.id } })).toMatchObject({ status: "CANCELLED", content: prefix });
    await vi.waitFor(() => expect(fake.requests.at(-1)?.aborted, "the model's stream was closed").toBe(true), { timeout: 15_000, interval: 20 });

    const response = await sending;
    expect(response.errors).toBeUndefined();
    expect(response.data!.sendMessage.turn).toMatchObject({ status: "CANCELLED", stopCode: "CANCELLED" });
    expect(response.data!.sendMessage.reply).toMatchObject({ status: "CANCELLED", content: prefix });

    const events = await eventsUntilSettled(stream);
    expect(events.at(-1)!.message).toMatchObject({ status: "CANCELLED", content: prefix });
    expect(joined(events)).toBe(prefix);
    // messageAdded delivers the cancelled answer once it has ended, as it was left.
    expect((await added.next()).data?.messageAdded).toMatchObject({ role: "USER", status: "COMPLETE" });
    expect((await added.next()).data?.messageAdded).toEqual({ id: events[0]!.message.id, role: "ASSISTANT", status: "CANCELLED", content: prefix });
    never.resolve();
    stream.dispose();
    added.dispose();
  });

  it("should run no further tool call once the turn is cancelled between a tool call and the next model call", async () => {
    const user = await newUser(a);
    fake.enqueue(
      toolCallReply([{ id: `call_${randomUUID()}`, name: "add_task", args: { title: "First" } }], "Add the first."),
      // Would add a second task, had the call not been stopped before it answered.
      { ...toolCallReply([{ id: `call_${randomUUID()}`, name: "add_task", args: { title: "Second" } }], "Add the second."), delayMs: 10_000 },
    );
    const requestsBefore = fake.requests.length;
    const started = await send(a, user, { content: "add two tasks", waitForReply: false });
    expect(started.errors).toBeUndefined();
    const turnId = started.data!.sendMessage.turn.id;
    await vi.waitFor(() => expect(fake.requests.length - requestsBefore, "model calls").toBe(2), { timeout: 15_000, interval: 20 });
    expect((await a.db.task.findMany({ where: { userId: user.id } })).map((task) => task.title)).toEqual(["First"]);

    const cancelled = await cancel(b, user, turnId);

    expect(cancelled).toMatchObject({ status: "CANCELLED", stopCode: "CANCELLED" });
    // The committed tool call stays committed; nothing after the cancel ran.
    expect(cancelled.messages.map((m) => [m.role, m.status])).toEqual([
      ["USER", "COMPLETE"],
      ["ASSISTANT", "COMPLETE"],
      ["TOOL", "COMPLETE"],
    ]);
    await vi.waitFor(() => expect(fake.requests.at(-1)?.aborted, "the model call was aborted").toBe(true), { timeout: 15_000, interval: 20 });
    expect((await a.db.task.findMany({ where: { userId: user.id } })).map((task) => task.title)).toEqual(["First"]);
    expect(fake.requests.length - requestsBefore).toBe(2);
  });

  it("should end the turn within a second of cancelTurn answering, whichever instance it is sent to", async () => {
    const user = await newUser(a);
    const never = deferred();
    fake.enqueue(textReply("This answer never finishes.", { gate: { afterDeltas: 1, until: never.promise } }));
    const started = await send(a, user, { content: "slow", waitForReply: false });
    const turnId = started.data!.sendMessage.turn.id;
    await vi.waitFor(async () => expect(await a.db.message.count({ where: { userId: user.id, role: "assistant" } }), "assistant messages").toBe(1), {
      timeout: 15_000,
      interval: 20,
    });

    // Sent to the instance that runs it this time.
    const cancelled = await cancel(a, user, turnId);
    const answeredAt = performance.now();
    const row = await vi.waitFor(
      async () => {
        const turn = await a.db.turn.findFirstOrThrow({ where: { userId: user.id } });
        expect(turn.status, "the turn's status").not.toBe("RUNNING");
        return turn;
      },
      { timeout: 15_000, interval: 20 },
    );
    // A generous behavioural bound: the contract says at most 1 s.
    expect(performance.now() - answeredAt).toBeLessThan(1000);
    expect(row.status).toBe("CANCELLED");
    expect(cancelled.status).toBe("CANCELLED");
    never.resolve();
  });

  it("should return an ended turn unchanged", async () => {
    const user = await newUser(a);
    fake.enqueue(textReply("All done."));
    const sent = await send(a, user, { content: "quick" });
    expect(sent.errors).toBeUndefined();
    const turn = sent.data!.sendMessage.turn;

    const again = await cancel(b, user, turn.id);

    expect(again).toMatchObject({ id: turn.id, status: "COMPLETED", stopCode: null, finishedAt: turn.finishedAt });
    expect(again.messages.map((m) => [m.role, m.status, m.content])).toEqual([
      ["USER", "COMPLETE", "quick"],
      ["ASSISTANT", "COMPLETE", "All done."],
    ]);
  });

  it("should answer NOT_FOUND for another user's turn or one that does not exist, and BAD_USER_INPUT for an id that is not a turn's", async () => {
    const owner = await newUser(a, "owner");
    const intruder = await newUser(a, "intruder");
    const never = deferred();
    fake.enqueue(textReply("Mine.", { gate: { afterDeltas: 0, until: never.promise } }));
    const started = await send(a, owner, { content: "private", waitForReply: false });
    const turnId = started.data!.sendMessage.turn.id;

    for (const id of [turnId, toGlobalId("Turn", randomUUID())]) {
      const response = await b.request(CANCEL_TURN, { id }, intruder.token);
      expect(response.data).toBeNull();
      expect(response.errors?.[0]).toMatchObject({ message: "Turn not found", extensions: { code: "NOT_FOUND" } });
    }
    const wrongType = await b.request(CANCEL_TURN, { id: toGlobalId("Conversation", randomUUID()) }, intruder.token);
    expect(wrongType.errors?.[0]).toMatchObject({ extensions: { code: "BAD_USER_INPUT", field: "id" } });
    // The owner's turn is still running, untouched.
    expect((await a.db.turn.findFirstOrThrow({ where: { userId: owner.id } })).status).toBe("RUNNING");

    expect((await cancel(a, owner, turnId)).status).toBe("CANCELLED");
    never.resolve();
  });
});
