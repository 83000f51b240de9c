import { randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import type { Db } from "../../src/db/client.js";
import { sweepInterruptedTurns } from "../../src/domain/conversation-log.js";
import { toGlobalId } from "../../src/lib/ids.js";
import { cohereAssistant } from "../helpers/chat.js";
import { testDb } from "../helpers/db.js";
import { startFakeCohere, textReply, type FakeCohere } from "../helpers/fake-cohere.js";
import { newUser, startTestServer, type TestServer, type TestUser } from "../helpers/server.js";
import { ACTIVE_TURN, CANCEL_TURN, deferred, SEND_LIVE, type LivePayload } from "./support.js";

/**
 * What an instance that died mid-turn leaves behind, written as it would be:
 * a conversation whose lease (the dead instance's) has expired, the user
 * message, its turn RUNNING under that lease, and the answer it was streaming.
 * `leaseLive` makes the lease still valid instead (an instance alive elsewhere).
 */
async function deadTurn(
  db: Db,
  userId: string,
  options: { content: string; clientMessageId?: string; partial?: string; leaseLive?: boolean },
): Promise<{ conversationId: string; turnId: string; userMessageId: string; answerId: string | undefined }> {
  const leaseId = randomUUID();
  const expiry = options.leaseLive ? "now() + interval '10 minutes'" : "now() - interval '1 second'";
  const [conversation] = await db.$queryRawUnsafe<{ id: string }[]>(
    // last_seq is the newest settled message: the streaming answer sits above it.
    `INSERT INTO conversations (user_id, title, last_seq, turn_lease_id, turn_lease_expires_at)
     VALUES ($1, 'Died mid-turn', 1, $2::uuid, ${expiry}) RETURNING id::text`,
    userId,
    leaseId,
  );
  const conversationId = conversation!.id;
  const user = await db.message.create({
    data: { conversationId, userId, seq: 1, role: "user", content: options.content, clientMessageId: options.clientMessageId ?? null },
  });
  const answer =
    options.partial === undefined
      ? undefined
      : await db.message.create({ data: { conversationId, userId, seq: 2, role: "assistant", content: options.partial, status: "STREAMING" } });
  const turn = await db.turn.create({ data: { userId, conversationId, userMessageId: user.id, leaseId, status: "RUNNING" } });
  return { conversationId, turnId: turn.id, userMessageId: user.id, answerId: answer?.id };
}

describe("a turn whose instance died", () => {
  let fake: FakeCohere;
  let server: TestServer;
  let db: Db;

  beforeAll(async () => {
    db = testDb();
    fake = await startFakeCohere();
    server = await startTestServer({ assistant: cohereAssistant(fake) });
  });
  afterAll(async () => {
    await server.close();
    await fake.close();
    await db.$disconnect();
  });

  async function send(user: TestUser, input: Record<string, unknown>): Promise<LivePayload> {
    const response = await user.gql<{ sendMessage: LivePayload }>(SEND_LIVE, { input });
    expect(response.errors).toBeUndefined();
    return response.data!.sendMessage;
  }

  async function expectInterrupted(turnId: string, answerId: string | undefined): Promise<void> {
    const turn = await db.turn.findUniqueOrThrow({ where: { id: turnId } });
    expect(turn).toMatchObject({ status: "FAILED", stopCode: "INTERRUPTED" });
    expect(turn.finishedAt).not.toBeNull();
    if (!answerId) return;
    const answer = await db.message.findUniqueOrThrow({ where: { id: answerId } });
    expect(answer.status).toBe("FAILED");
    // Settled, so messageAdded's high-water mark (last_seq) moved over it.
    const conversation = await db.conversation.findUniqueOrThrow({ where: { id: turn.conversationId } });
    expect(conversation.lastSeq).toBeGreaterThanOrEqual(answer.seq);
  }

  it("should be marked FAILED / INTERRUPTED, with its streaming answer, when activeTurn is read after its lease expired", async () => {
    const user = await newUser(server);
    const dead = await deadTurn(db, user.id, { content: "hello?", partial: "I was say" });

    const response = await user.gql(ACTIVE_TURN, { id: toGlobalId("Conversation", dead.conversationId) });

    expect(response.errors).toBeUndefined();
    expect(response.data?.conversation.activeTurn).toBeNull();
    await expectInterrupted(dead.turnId, dead.answerId);
  });

  it("should stay RUNNING while its lease is live (its instance is alive elsewhere)", async () => {
    const user = await newUser(server);
    const alive = await deadTurn(db, user.id, { content: "still going", partial: "Work", leaseLive: true });

    const response = await user.gql(ACTIVE_TURN, { id: toGlobalId("Conversation", alive.conversationId) });

    expect(response.data?.conversation.activeTurn).toEqual({ id: toGlobalId("Turn", alive.turnId), status: "RUNNING" });
    expect((await db.turn.findUniqueOrThrow({ where: { id: alive.turnId } })).status).toBe("RUNNING");
    expect((await db.message.findUniqueOrThrow({ where: { id: alive.answerId! } })).status).toBe("STREAMING");
  });

  it("should be marked interrupted by cancelTurn, which returns it so", async () => {
    const user = await newUser(server);
    const dead = await deadTurn(db, user.id, { content: "cancel me", partial: "Sure, I" });

    const response = await user.gql(CANCEL_TURN, { id: toGlobalId("Turn", dead.turnId) });

    expect(response.errors).toBeUndefined();
    expect(response.data?.cancelTurn).toMatchObject({ status: "FAILED", stopCode: "INTERRUPTED" });
    await expectInterrupted(dead.turnId, dead.answerId);
  });

  it("should be marked interrupted when a new message is sent to its conversation, which then runs normally without the lost answer", async () => {
    const user = await newUser(server);
    const dead = await deadTurn(db, user.id, { content: "first question", partial: "Half an ans" });
    fake.enqueue(textReply("Answering now."));

    const payload = await send(user, { conversationId: toGlobalId("Conversation", dead.conversationId), content: "are you there?" });

    expect(payload.turn.status).toBe("COMPLETED");
    expect(payload.reply?.content).toBe("Answering now.");
    await expectInterrupted(dead.turnId, dead.answerId);
    // The model never sees the answer that was cut off.
    expect(fake.requests.at(-1)!.body.messages.slice(1)).toEqual([
      { role: "user", content: "first question" },
      { role: "user", content: "are you there?" },
    ]);
  });

  it("should be resumed by a retry with its clientMessageId, without storing the user message again", async () => {
    const user = await newUser(server);
    const clientMessageId = `cm-${randomUUID()}`;
    const dead = await deadTurn(db, user.id, { content: "resume me", clientMessageId, partial: "Let me" });
    fake.enqueue(textReply("Resumed and answered."));

    const payload = await send(user, { content: "resume me", clientMessageId });

    expect(payload.turn).toMatchObject({ id: toGlobalId("Turn", dead.turnId), status: "COMPLETED", stopCode: null });
    expect(payload.userMessage.id).toBe(toGlobalId("Message", dead.userMessageId));
    expect(payload.reply?.content).toBe("Resumed and answered.");
    expect(payload.messages.map((m) => [m.role, m.status, m.content])).toEqual([
      ["USER", "COMPLETE", "resume me"],
      ["ASSISTANT", "FAILED", "Let me"],
      ["ASSISTANT", "COMPLETE", "Resumed and answered."],
    ]);
    expect(fake.requests.at(-1)!.body.messages.slice(1)).toEqual([{ role: "user", content: "resume me" }]);
    expect(await db.message.count({ where: { userId: user.id, role: "user" } })).toBe(1);
    expect(await db.turn.count({ where: { userId: user.id } })).toBe(1);
  });

  it("should be swept at an instance's start", async () => {
    const user = await newUser(server);
    const dead = await deadTurn(db, user.id, { content: "swept", partial: "Gone" });
    const alive = await deadTurn(db, user.id, { content: "not swept", leaseLive: true });

    // What buildApp's start() runs; another instance starting now does the same.
    await sweepInterruptedTurns(db);

    await expectInterrupted(dead.turnId, dead.answerId);
    expect((await db.turn.findUniqueOrThrow({ where: { id: alive.turnId } })).status).toBe("RUNNING");
  });

  it("should let a background turn finish within the shutdown's grace period", async () => {
    const own = await startTestServer({ assistant: cohereAssistant(fake), shutdownGraceMs: 20_000 });
    const user = await newUser(own);
    const gate = deferred();
    fake.enqueue(textReply("Finished while the server drained.", { gate: { afterDeltas: 2, until: gate.promise } }));
    const started = await own.request<{ sendMessage: LivePayload }>(
      SEND_LIVE,
      { input: { content: "finish me", clientMessageId: `cm-${randomUUID()}`, waitForReply: false } },
      user.token,
    );
    expect(started.errors).toBeUndefined();
    await vi.waitFor(async () => expect(await db.message.findFirst({ where: { userId: user.id, role: "assistant" } }), "the answer").not.toBeNull(), {
      timeout: 15_000,
      interval: 20,
    });

    const stopped = own.app.stop();
    // Draining: new work is refused, while the turn goes on.
    expect((await fetch(`${own.baseUrl}/ready`)).status).toBe(503);
    gate.resolve();
    expect(await stopped).toBe(true);
    await own.close();

    const turn = await db.turn.findFirstOrThrow({ where: { userId: user.id } });
    expect(turn).toMatchObject({ status: "COMPLETED", stopCode: null });
    const answer = await db.message.findFirstOrThrow({ where: { userId: user.id, role: "assistant" } });
    expect(answer).toMatchObject({ status: "COMPLETE", content: "Finished while the server drained." });
  });

  it("should end this instance's turns as interrupted when it shuts down, and a retry on another instance resumes them", async () => {
    // A turn gets the shutdown's grace period to finish; this one is held past it.
    const own = await startTestServer({ assistant: cohereAssistant(fake), shutdownGraceMs: 200 });
    const user = await newUser(own);
    const clientMessageId = `cm-${randomUUID()}`;
    const never = deferred();
    fake.enqueue(textReply("This is cut short by the shutdown.", { gate: { afterDeltas: 3, until: never.promise } }));
    const started = await own.request<{ sendMessage: LivePayload }>(
      SEND_LIVE,
      { input: { content: "before shutdown", clientMessageId, waitForReply: false } },
      user.token,
    );
    expect(started.errors).toBeUndefined();
    await vi.waitFor(async () => expect(await db.message.findFirst({ where: { userId: user.id, role: "assistant" } }), "the answer").not.toBeNull(), {
      timeout: 15_000,
      interval: 20,
    });

    await own.close();

    const turn = await db.turn.findFirstOrThrow({ where: { userId: user.id } });
    expect(turn).toMatchObject({ status: "FAILED", stopCode: "INTERRUPTED" });
    const cut = await db.message.findFirstOrThrow({ where: { userId: user.id, role: "assistant" } });
    expect(cut.status).toBe("FAILED");
    expect(cut.content.length).toBeGreaterThan(0);
    // Its lease was given back: the retry does not wait for it to expire.
    const conversation = await db.conversation.findUniqueOrThrow({ where: { id: turn.conversationId } });
    expect(conversation.turnLeaseId).toBeNull();

    fake.enqueue(textReply("Answered after the restart."));
    const resumed = await send(
      { ...user, gql: (query, variables) => server.request(query, variables, user.token) },
      {
        content: "before shutdown",
        clientMessageId,
      },
    );
    expect(resumed.turn).toMatchObject({ id: started.data!.sendMessage.turn.id, status: "COMPLETED" });
    expect(resumed.reply?.content).toBe("Answered after the restart.");
    never.resolve();
  });
});
