import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseId } from "../../src/lib/ids.js";
import { cohereAssistant } from "../helpers/chat.js";
import { migratedDatabase, testDb } from "../helpers/db.js";
import { startFakeCohere, textReply, toolCallReply, type FakeCohere } from "../helpers/fake-cohere.js";
import { newUser, startTestServer, type TestServer, type TestUser } from "../helpers/server.js";
import { wsClient, type TestWsClient } from "../helpers/ws-client.js";
import {
  ACTIVE,
  addTask,
  CANCEL,
  decide,
  decided,
  errorCode,
  followTurns,
  newConversationOf,
  requestsSince,
  send,
  sent,
  statusesUntil,
  taskTitles,
  toolResultsSent,
  turnAfter,
  turnOf,
  waitFor,
  type ApprovalTurn,
} from "./approval-support.js";

/**
 * How a wait for approval ends other than by a clean decision (issue 24):
 * stale decisions, bad ones, cancel, a newer message, expiry, and the turn's
 * time bound across the wait. Real Postgres, the real SDK, the fake Cohere.
 */

const EXPIRED_REPLY =
  "I did not make that change: it needed your approval, and the approval expired before you gave it. Nothing was changed; ask again if you still want it.";

describe("decisions that no longer apply, and waits that end", () => {
  let fake: FakeCohere;
  let server: TestServer;
  const clients: TestWsClient[] = [];

  beforeAll(async () => {
    fake = await startFakeCohere();
    server = await startTestServer({ assistant: cohereAssistant(fake) });
  });
  afterAll(async () => {
    await Promise.all(clients.map((client) => client.dispose()));
    await server?.close();
    await fake?.close();
  });

  /** A turn paused on deletes of new tasks with these titles (call ids `call_<title>`). */
  async function pausedOn(user: TestUser, titles: string[], conversationId?: string): Promise<{ turn: ApprovalTurn; ids: string[] }> {
    const ids: string[] = [];
    for (const title of titles) ids.push(await addTask(server, user, title));
    fake.enqueue(toolCallReply(titles.map((title, index) => ({ id: `call_${title}`, name: "delete_task", args: { task_id: ids[index]! } }))));
    const paused = await sent(server, user, { content: `delete ${titles.join(" and ")}`, ...(conversationId ? { conversationId } : {}) });
    expect(paused.turn.status).toBe("REQUIRES_ACTION");
    return { turn: paused.turn, ids };
  }

  /** Every row of the user's that a refused decision must leave as it was. */
  async function rowsOf(user: TestUser) {
    const where = { userId: user.id };
    const [turns, approvals, messages, tasks] = await Promise.all([
      server.db.turn.findMany({ where, orderBy: { startedAt: "asc" } }),
      server.db.toolApproval.findMany({ where, orderBy: { toolCallId: "asc" } }),
      server.db.message.findMany({ where, orderBy: { seq: "asc" } }),
      server.db.task.findMany({ where, orderBy: { title: "asc" } }),
    ]);
    return { turns, approvals, messages, tasks };
  }

  it("should refuse a decision the other way, or with another argumentsHash, as STALE_DECISION and change nothing; the same decision again is a no-op", async () => {
    const user = await newUser(server);
    const { turn } = await pausedOn(user, ["alpha", "beta"]);
    const hash = turn.toolCalls[0]!.approval!.argumentsHash;
    expect(turn.toolCalls[1]!.approval!.argumentsHash).not.toBe(hash);
    await decided(server, user, turn.id, [{ toolCallId: "call_alpha", approve: true, argumentsHash: hash }]);
    const before = await rowsOf(user);

    // One stale decision in a list refuses the whole list: beta stays PENDING.
    const mixed = await decide(server, user, turn.id, [
      { toolCallId: "call_beta", approve: true },
      { toolCallId: "call_alpha", approve: false, reason: "changed my mind" },
    ]);
    expect(errorCode(mixed)).toBe("STALE_DECISION");
    expect(mixed.errors![0]!.message).toBe('Tool call "call_alpha" can no longer be decided: it was already approved');
    expect(mixed.errors![0]!.extensions).toMatchObject({ toolCallId: "call_alpha", approval: "APPROVED" });
    // Beta's hash is not alpha's: a decision bound to what was shown for alpha cannot decide beta.
    const crossed = await decide(server, user, turn.id, [{ toolCallId: "call_beta", approve: true, argumentsHash: hash }]);
    expect(errorCode(crossed)).toBe("STALE_DECISION");
    expect(await rowsOf(user)).toEqual(before);

    // The same decision again: the turn as it is, nothing changed.
    const again = await decided(server, user, turn.id, [{ toolCallId: "call_alpha", approve: true }]);
    expect(again.status).toBe("REQUIRES_ACTION");
    expect(await rowsOf(user)).toEqual(before);

    fake.enqueue(textReply("Deleted both."));
    await decided(server, user, turn.id, [{ toolCallId: "call_beta", approve: true }]);
    expect((await turnAfter(server, user, turn.id)).status).toBe("COMPLETED");
    const after = await rowsOf(user);
    expect(errorCode(await decide(server, user, turn.id, [{ toolCallId: "call_beta", approve: false }]))).toBe("STALE_DECISION");
    const repeated = await decided(server, user, turn.id, [{ toolCallId: "call_beta", approve: true }]);
    expect(repeated.status).toBe("COMPLETED");
    expect(await rowsOf(user)).toEqual(after);
  });

  it("should answer an unknown call BAD_USER_INPUT naming it, a bad list BAD_USER_INPUT, and another user's turn NOT_FOUND", async () => {
    const user = await newUser(server);
    const other = await newUser(server);
    const { turn } = await pausedOn(user, ["gamma"]);
    const before = await rowsOf(user);
    const cases: [TestUser, unknown[], string, string | undefined][] = [
      [user, [{ toolCallId: "call_nope", approve: true }], "BAD_USER_INPUT", "decisions[0].toolCallId"],
      [user, [], "BAD_USER_INPUT", "decisions"],
      [
        user,
        [
          { toolCallId: "call_gamma", approve: true },
          { toolCallId: "call_gamma", approve: false },
        ],
        "BAD_USER_INPUT",
        "decisions[1].toolCallId",
      ],
      [user, [{ toolCallId: "call_gamma", approve: false, reason: "x".repeat(1001) }], "BAD_USER_INPUT", "decisions[0].reason"],
      [user, [{ toolCallId: "call_gamma", approve: false, reason: "nul\u0000" }], "BAD_USER_INPUT", "decisions[0].reason"],
      [other, [{ toolCallId: "call_gamma", approve: true }], "NOT_FOUND", undefined],
    ];
    for (const [who, decisions, code, field] of cases) {
      const response = await server.request(
        `mutation D($t: ID!, $d: [ToolCallDecision!]!) { decideToolCalls(turnId: $t, decisions: $d) { id } }`,
        { t: turn.id, d: decisions },
        who.token,
      );
      expect(errorCode(response), JSON.stringify(decisions).slice(0, 80)).toBe(code);
      expect(response.errors![0]!.extensions?.field).toBe(field);
    }
    expect((await decide(server, other, turn.id, [{ toolCallId: "call_gamma", approve: true }])).errors![0]!.message).toBe("Turn not found");
    expect(await rowsOf(user)).toEqual(before);
  });

  it("should end a waiting turn at cancelTurn, run nothing, and refuse its decisions as STALE_DECISION", async () => {
    const user = await newUser(server);
    const conversationId = await newConversationOf(server, user);
    const client = wsClient(server.wsUrl, user.token);
    clients.push(client);
    const turns = await followTurns(server, client, conversationId);
    const from = fake.requests.length;
    const { turn } = await pausedOn(user, ["delta"], conversationId);

    const response = await server.request<{ cancelTurn: ApprovalTurn }>(CANCEL, { id: turn.id }, user.token);
    expect(response.errors).toBeUndefined();
    const cancelled = response.data!.cancelTurn;

    expect(cancelled).toMatchObject({ status: "CANCELLED", stopCode: "CANCELLED" });
    expect(cancelled.finishedAt).not.toBeNull();
    expect(cancelled.toolCalls[0]).toMatchObject({
      error: "Not run: the user cancelled the turn before deciding.",
      approval: { status: "EXPIRED", reason: "The turn was cancelled" },
    });
    expect(cancelled.messages.map((m) => m.role)).toEqual(["USER", "ASSISTANT", "TOOL"]);
    expect(await taskTitles(server, user)).toEqual(["delta"]);
    expect(await statusesUntil(turns, turn.id, "CANCELLED")).toEqual(["RUNNING", "REQUIRES_ACTION", "CANCELLED"]);
    const stale = await decide(server, user, turn.id, [{ toolCallId: "call_delta", approve: true }]);
    expect(errorCode(stale)).toBe("STALE_DECISION");
    expect(await taskTitles(server, user)).toEqual(["delta"]);
    expect(
      (await server.request<{ conversation: { activeTurn: null } }>(ACTIVE, { id: conversationId }, user.token)).data?.conversation.activeTurn,
    ).toBeNull();
    // Cancelled again: the ended turn as it is.
    expect((await server.request<{ cancelTurn: ApprovalTurn }>(CANCEL, { id: turn.id }, user.token)).data?.cancelTurn.status).toBe("CANCELLED");
    expect(requestsSince(fake, from)).toHaveLength(1);
    turns.dispose();
  });

  it("should end a waiting turn when a newer message comes, and run the newer turn; the old decisions are stale", async () => {
    const user = await newUser(server);
    const { turn } = await pausedOn(user, ["epsilon"]);
    const conversationId = (
      await server.request<{ node: { conversation: { id: string } } }>(
        `query T($id: ID!) { node(id: $id) { ... on Turn { conversation { id } } } }`,
        { id: turn.id },
        user.token,
      )
    ).data!.node.conversation.id;
    const from = fake.requests.length;
    fake.enqueue(textReply("Fine, I will leave it."));

    const next = await sent(server, user, { conversationId, content: "never mind, keep it" });

    expect(next.turn.status).toBe("COMPLETED");
    const old = await turnOf(server, user, turn.id);
    expect(old).toMatchObject({ status: "CANCELLED", stopCode: "CANCELLED" });
    expect(old.toolCalls[0]).toMatchObject({
      error: "Not run: the user sent a new message instead of deciding.",
      approval: { status: "EXPIRED", reason: "A newer message replaced this turn" },
    });
    // The newer turn's model call saw the held call answered, before the new message.
    expect(toolResultsSent(requestsSince(fake, from)[0]!).get("call_epsilon")).toEqual({
      error: "Not run: the user sent a new message instead of deciding.",
    });
    expect(errorCode(await decide(server, user, turn.id, [{ toolCallId: "call_epsilon", approve: true }]))).toBe("STALE_DECISION");
    expect(await taskTitles(server, user)).toEqual(["epsilon"]);
  });
});

describe("CHAT_APPROVAL_TTL", () => {
  let fake: FakeCohere;
  const servers: TestServer[] = [];
  const clients: TestWsClient[] = [];

  beforeAll(async () => {
    fake = await startFakeCohere();
  });
  afterAll(async () => {
    await Promise.all(clients.map((client) => client.dispose()));
    for (const server of servers) await server.close();
    await fake?.close();
  });

  async function serverWithTtl(ttlMs: number, db = testDb(), approvalSweep = true): Promise<TestServer> {
    const server = await startTestServer({ db, assistant: cohereAssistant(fake, { approvalTtlMs: ttlMs, approvalSweep }) });
    servers.push(server);
    return server;
  }

  it("should end the turn APPROVAL_EXPIRED when nobody decides in time, run nothing, and say so in the reply", async () => {
    const server = await serverWithTtl(1000);
    const user = await newUser(server);
    const conversationId = await newConversationOf(server, user);
    const client = wsClient(server.wsUrl, user.token);
    clients.push(client);
    const turns = await followTurns(server, client, conversationId);
    const task = await addTask(server, user, "Expiring");
    const from = fake.requests.length;
    fake.enqueue(toolCallReply([{ id: "call_expiring", name: "delete_task", args: { task_id: task } }]));
    const paused = await sent(server, user, { conversationId, content: "delete it", clientMessageId: `expiring-${user.id}` });
    expect(paused.turn.status).toBe("REQUIRES_ACTION");

    // Nobody asks: the instance that paused it ends it when it falls due.
    expect(await statusesUntil(turns, paused.turn.id, "COMPLETED")).toEqual(["RUNNING", "REQUIRES_ACTION", "COMPLETED"]);
    const ended = await turnOf(server, user, paused.turn.id);
    expect(ended).toMatchObject({ status: "COMPLETED", stopCode: "APPROVAL_EXPIRED" });
    expect(ended.toolCalls[0]).toMatchObject({
      error: "Not run: the user did not approve this call in time.",
      approval: { status: "EXPIRED", reason: "Not decided in time" },
    });
    expect(ended.messages.map((m) => [m.role, m.content]).at(-1)).toEqual(["ASSISTANT", EXPIRED_REPLY]);
    expect(await taskTitles(server, user)).toEqual(["Expiring"]);
    expect(requestsSince(fake, from)).toHaveLength(1);
    expect(errorCode(await decide(server, user, paused.turn.id, [{ toolCallId: "call_expiring", approve: true }]))).toBe("STALE_DECISION");
    // Sent again with its clientMessageId: the turn as it ended, with the stop code beside it.
    const retried = await send(server, user, { conversationId, content: "delete it", clientMessageId: `expiring-${user.id}` });
    expect(errorCode(retried)).toBe("APPROVAL_EXPIRED");
    expect(retried.data?.sendMessage.reply?.content).toBe(EXPIRED_REPLY);
    turns.dispose();
  });

  it("should find an expiry that no timer saw: the pausing server gone, a decision on another is STALE_DECISION and ends the turn", async () => {
    // A database of its own: every other file's servers sweep the shared one, and would end the turn first.
    const database = await migratedDatabase();
    const db = testDb({ url: database.url });
    try {
      const pausing = await serverWithTtl(1000, db);
      // No timer of its own, so only the decision can notice the expiry.
      const other = await serverWithTtl(1000, db, false);
      const user = await newUser(pausing);
      const task = await addTask(pausing, user, "Orphaned");
      fake.enqueue(toolCallReply([{ id: "call_orphaned", name: "delete_task", args: { task_id: task } }]));
      const paused = await sent(pausing, user, { content: "delete it" });
      expect(paused.turn.status).toBe("REQUIRES_ACTION");
      await pausing.close();
      servers.splice(servers.indexOf(pausing), 1);
      await waitFor(
        () => db.$queryRaw<{ due: boolean }[]>`SELECT bool_and(expires_at <= now()) AS due FROM tool_approvals WHERE user_id = ${user.id}`,
        (rows) => rows[0]?.due === true,
        "the approval to fall due",
      );
      expect((await turnOf(other, user, paused.turn.id)).status).toBe("REQUIRES_ACTION");

      const stale = await decide(other, user, paused.turn.id, [{ toolCallId: "call_orphaned", approve: true }]);

      expect(errorCode(stale)).toBe("STALE_DECISION");
      expect(stale.errors![0]!.extensions).toMatchObject({ toolCallId: "call_orphaned", approval: "EXPIRED" });
      expect(await turnOf(other, user, paused.turn.id)).toMatchObject({ status: "COMPLETED", stopCode: "APPROVAL_EXPIRED" });
      expect(await taskTitles(other, user)).toEqual(["Orphaned"]);
    } finally {
      for (const server of servers.splice(0)) await server.close();
      await db.$disconnect();
      await database.drop();
    }
  });
});

/**
 * The turn's own time, in real time: these two cases set their durations from
 * the bound and from what the turn recorded (turns.time_used_ms at the pause),
 * not from a guess of how fast this machine is. With a bound barely above the
 * model's scripted delays, a loaded machine's own overhead (HTTP, SDK, the
 * turn's writes) ran the first case out of time with no wait counted at all.
 */
const BOUND_MS = 4000;
const CALL_TIMEOUT_MS = 3900;

describe("the turn's time bound across a pause", () => {
  let fake: FakeCohere;
  let server: TestServer;

  beforeAll(async () => {
    fake = await startFakeCohere();
    server = await startTestServer({ assistant: cohereAssistant(fake, { turnTimeoutMs: BOUND_MS, callTimeoutMs: CALL_TIMEOUT_MS }) });
  });
  afterAll(async () => {
    await server?.close();
    await fake?.close();
  });

  /** A turn paused on a delete, its first model call answering after `delayMs`; and the time it recorded as used. */
  async function pauseAfter(user: TestUser, delayMs: number): Promise<{ turn: ApprovalTurn; usedMs: number }> {
    const task = await addTask(server, user, "Timed");
    fake.enqueue({ ...toolCallReply([{ id: `call_timed_${user.id}`, name: "delete_task", args: { task_id: task } }]), delayMs });
    const paused = await sent(server, user, { content: "delete it" });
    expect(paused.turn.status).toBe("REQUIRES_ACTION");
    const row = await server.db.turn.findUniqueOrThrow({ where: { id: parseId(paused.turn.id, "id", "Turn") } });
    return { turn: paused.turn, usedMs: row.timeUsedMs };
  }

  it("should not count the wait for a human: a turn that waited longer than its bound still finishes", async () => {
    const user = await newUser(server);
    const { turn, usedMs } = await pauseAfter(user, 0);
    expect(usedMs).toBeLessThan(BOUND_MS);
    // The wait alone is longer than the whole bound: counted, it would end the turn at once.
    await new Promise((resolve) => setTimeout(resolve, BOUND_MS + 500));
    fake.enqueue(textReply("Deleted."));
    await decided(server, user, turn.id, [{ toolCallId: `call_timed_${user.id}`, approve: true }]);
    const done = await turnAfter(server, user, turn.id);
    expect(done).toMatchObject({ status: "COMPLETED", stopCode: null });
    expect(await taskTitles(server, user)).toEqual([]);
  });

  it("should count the turn's own time before and after the pause together", async () => {
    const user = await newUser(server);
    const { turn, usedMs } = await pauseAfter(user, 1000);
    // The first call's delay was counted (the rest is this machine's own overhead).
    expect(usedMs).toBeGreaterThanOrEqual(1000);
    // A call after the pause that is within the bound and the call timeout on its own, but not with the time used before.
    const afterMs = BOUND_MS - usedMs + 500;
    expect(afterMs).toBeLessThan(CALL_TIMEOUT_MS);
    fake.enqueue({ ...textReply("Too slow."), delayMs: afterMs });
    await decided(server, user, turn.id, [{ toolCallId: `call_timed_${user.id}`, approve: true }]);
    const done = await turnAfter(server, user, turn.id);
    expect(done).toMatchObject({ status: "COMPLETED", stopCode: "ASSISTANT_TIMEOUT" });
  });
});
