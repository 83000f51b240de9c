import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseId } from "../../src/lib/ids.js";
import { cohereAssistant } from "../helpers/chat.js";
import { startFakeCohere, textReply, toolCallReply, type FakeCohere } from "../helpers/fake-cohere.js";
import { testDb } from "../helpers/db.js";
import { newUser, startTestServer, type TestServer } from "../helpers/server.js";
import { wsClient, type TestWsClient } from "../helpers/ws-client.js";
import {
  addTask,
  decided,
  followTurns,
  newConversationOf,
  requestsSince,
  sent,
  statusesUntil,
  taskTitles,
  toolResultsSent,
  turnAfter,
  turnOf,
  waitFor,
} from "./approval-support.js";
import { deferred, twoInstances } from "./support.js";

/**
 * Approval before destructive or bulk tool calls (issue 24), end to end: the
 * real cohere-ai SDK against the fake Cohere, two API instances on one
 * Postgres, graphql-ws for turnUpdated. CHAT_APPROVAL is the default
 * (destructive) unless a case says otherwise.
 */

const MINUTE = 60_000;

describe("approval of held tool calls", () => {
  let fake: FakeCohere;
  let a: TestServer;
  let b: TestServer;
  const clients: TestWsClient[] = [];

  beforeAll(async () => {
    fake = await startFakeCohere();
    [a, b] = await twoInstances(fake);
  });
  afterAll(async () => {
    await Promise.all(clients.map((client) => client.dispose()));
    await a?.close();
    await b?.close();
    await fake?.close();
  });

  it("should pause at a delete_task, answer sendMessage there with REQUIRES_ACTION and the task's title, and run it once approved", async () => {
    const user = await newUser(a);
    const milk = await addTask(a, user, "Buy milk");
    await addTask(a, user, "Keep me");
    const conversationId = await newConversationOf(a, user);
    const client = wsClient(a.wsUrl, user.token);
    clients.push(client);
    const turns = await followTurns(a, client, conversationId);
    const from = fake.requests.length;
    fake.enqueue(
      toolCallReply([{ id: "call_delete_milk", name: "delete_task", args: { task_id: milk } }], "Delete it."),
      textReply("Deleted Buy milk."),
    );

    const paused = await sent(a, user, { conversationId, content: "drop the milk" });

    expect(paused.turn).toMatchObject({ status: "REQUIRES_ACTION", stopCode: null, finishedAt: null });
    expect(paused.reply).toBeNull();
    const [call] = paused.turn.toolCalls;
    expect(call).toMatchObject({ id: "call_delete_milk", name: "delete_task", result: null, error: null, tasks: [{ id: milk, title: "Buy milk" }] });
    expect(call!.approval).toMatchObject({
      status: "PENDING",
      reason: null,
      decidedAt: null,
      argumentsHash: expect.stringMatching(/^[0-9a-f]{64}$/),
    });
    // CHAT_APPROVAL_TTL (15 minutes by default) from the pause, by the database's clock.
    const waits = Date.parse(call!.approval!.expiresAt) - Date.parse(paused.turn.startedAt);
    expect(waits).toBeGreaterThan(14 * MINUTE);
    expect(waits).toBeLessThanOrEqual(15 * MINUTE + 10_000);
    // Nothing ran and the model was not called again; the turn holds no lease.
    expect(await taskTitles(a, user)).toEqual(["Buy milk", "Keep me"]);
    expect(requestsSince(fake, from)).toHaveLength(1);
    expect(paused.turn.messages.map((m) => m.role)).toEqual(["USER", "ASSISTANT"]);
    const conversation = await a.db.conversation.findUniqueOrThrow({ where: { id: parseId(conversationId, "id", "Conversation") } });
    expect(conversation.turnLeaseId).toBeNull();
    expect(await statusesUntil(turns, paused.turn.id, "REQUIRES_ACTION")).toEqual(["RUNNING", "REQUIRES_ACTION"]);

    const resumed = await decided(a, user, paused.turn.id, [{ toolCallId: "call_delete_milk", approve: true }]);
    expect(resumed.status).toBe("RUNNING");
    const done = await turnAfter(a, user, paused.turn.id);

    expect(done).toMatchObject({ status: "COMPLETED", stopCode: null });
    expect(done.toolCalls[0]).toMatchObject({
      error: null,
      result: { deleted: { id: milk, title: "Buy milk" } },
      approval: { status: "APPROVED" },
      tasks: [],
    });
    expect(done.messages.map((m) => [m.role, m.content]).at(-1)).toEqual(["ASSISTANT", "Deleted Buy milk."]);
    expect(await taskTitles(a, user)).toEqual(["Keep me"]);
    const requests = requestsSince(fake, from);
    expect(requests).toHaveLength(2);
    expect(toolResultsSent(requests[1]!).get("call_delete_milk")).toMatchObject({ deleted: { id: milk, title: "Buy milk" } });
    expect(await statusesUntil(turns, paused.turn.id, "COMPLETED")).toEqual(["RUNNING", "COMPLETED"]);
    turns.dispose();
  });

  it("should send a rejected call back to the model as declined, with the user's reason, and run nothing", async () => {
    const user = await newUser(a);
    const gym = await addTask(a, user, "Cancel gym");
    const from = fake.requests.length;
    fake.enqueue(toolCallReply([{ id: "call_delete_gym", name: "delete_task", args: { task_id: gym } }]), textReply("All right, I kept it."));
    const paused = await sent(a, user, { content: "forget the gym" });
    expect(paused.turn.status).toBe("REQUIRES_ACTION");

    await decided(a, user, paused.turn.id, [{ toolCallId: "call_delete_gym", approve: false, reason: "I still go on Mondays" }]);
    const done = await turnAfter(a, user, paused.turn.id);

    expect(done.status).toBe("COMPLETED");
    const refusal = "Not run: the user declined this call. Their reason: I still go on Mondays";
    expect(done.toolCalls[0]).toMatchObject({ result: null, error: refusal, approval: { status: "REJECTED", reason: "I still go on Mondays" } });
    expect(done.toolCalls[0]!.approval!.decidedAt).not.toBeNull();
    const requests = requestsSince(fake, from);
    expect(requests).toHaveLength(2);
    expect(toolResultsSent(requests[1]!).get("call_delete_gym")).toEqual({ error: refusal });
    expect(await taskTitles(a, user)).toEqual(["Cancel gym"]);
  });

  it("should run the calls that need no approval, hold two deletes, and resume only when both are decided, in reverse order", async () => {
    const user = await newUser(a);
    const [first, second] = [await addTask(a, user, "First"), await addTask(a, user, "Second")];
    const conversationId = await newConversationOf(a, user);
    const client = wsClient(b.wsUrl, user.token);
    clients.push(client);
    const turns = await followTurns(b, client, conversationId);
    const from = fake.requests.length;
    fake.enqueue(
      toolCallReply([
        { id: "call_del_first", name: "delete_task", args: { task_id: first } },
        { id: "call_add", name: "add_task", args: { title: "Added meanwhile" } },
        { id: "call_del_second", name: "delete_task", args: { task_id: second } },
      ]),
      textReply("Kept the first, deleted the second."),
    );
    const paused = await sent(a, user, { conversationId, content: "tidy up" });
    expect(paused.turn.toolCalls.map((call) => [call.id, call.approval?.status ?? null, call.error])).toEqual([
      ["call_del_first", "PENDING", null],
      ["call_add", null, null],
      ["call_del_second", "PENDING", null],
    ]);
    expect(await taskTitles(a, user)).toEqual(["Added meanwhile", "First", "Second"]);
    expect(await statusesUntil(turns, paused.turn.id, "REQUIRES_ACTION")).toEqual(["RUNNING", "REQUIRES_ACTION"]);

    // The second first: the turn keeps waiting, nothing runs, and the decision is seen live.
    const half = await decided(b, user, paused.turn.id, [{ toolCallId: "call_del_second", approve: true }]);
    expect(half.status).toBe("REQUIRES_ACTION");
    expect(half.toolCalls.map((call) => call.approval?.status ?? null)).toEqual(["PENDING", null, "APPROVED"]);
    const live = await turns.next(15_000);
    expect(live.data?.turnUpdated).toMatchObject({ id: paused.turn.id, status: "REQUIRES_ACTION" });
    expect((live.data?.turnUpdated as { toolCalls: { approval: unknown }[] }).toolCalls[2]).toEqual({
      id: "call_del_second",
      approval: { status: "APPROVED" },
    });
    expect(await taskTitles(a, user)).toEqual(["Added meanwhile", "First", "Second"]);
    expect(requestsSince(fake, from)).toHaveLength(1);

    await decided(a, user, paused.turn.id, [{ toolCallId: "call_del_first", approve: false, reason: "not that one" }]);
    const done = await turnAfter(a, user, paused.turn.id);

    expect(done.status).toBe("COMPLETED");
    expect(await taskTitles(a, user)).toEqual(["Added meanwhile", "First"]);
    const results = toolResultsSent(requestsSince(fake, from)[1]!);
    expect(results.get("call_del_first")).toEqual({ error: "Not run: the user declined this call. Their reason: not that one" });
    expect(results.get("call_add")).toMatchObject({ title: "Added meanwhile" });
    expect(results.get("call_del_second")).toMatchObject({ deleted: { id: second } });
    turns.dispose();
  });

  it("should resume on the instance that took the last decision", async () => {
    const user = await newUser(a);
    const task = await addTask(a, user, "Old plan");
    const gate = deferred();
    const from = fake.requests.length;
    fake.enqueue(
      toolCallReply([{ id: "call_del_plan", name: "delete_task", args: { task_id: task } }]),
      textReply("Deleted the old plan, as you approved.", { gate: { afterDeltas: 1, until: gate.promise } }),
    );
    const paused = await sent(a, user, { content: "drop the old plan" });
    expect(paused.turn.status).toBe("REQUIRES_ACTION");
    expect(a.app.assistant.runningCount + b.app.assistant.runningCount).toBe(0);

    await decided(b, user, paused.turn.id, [{ toolCallId: "call_del_plan", approve: true }]);
    try {
      // The model's answer waits at the gate, after the approved call ran: the turn is running, on b alone.
      await waitFor(
        async () => requestsSince(fake, from).length,
        (count) => count === 2,
        "the model call after the delete",
      );
      expect(b.app.assistant.runningCount).toBe(1);
      expect(a.app.assistant.runningCount).toBe(0);
      expect(await taskTitles(a, user)).toEqual([]);
    } finally {
      gate.resolve();
    }
    const done = await turnAfter(a, user, paused.turn.id);
    expect(done.status).toBe("COMPLETED");
    expect(done.messages.at(-1)?.content).toBe("Deleted the old plan, as you approved.");
  });

  it("should keep a pause across a server restart and resume it on the new server", async () => {
    const deps = cohereAssistant(fake);
    const db = testDb();
    let first: TestServer | undefined = await startTestServer({ db, assistant: deps });
    let second: TestServer | undefined;
    try {
      const user = await newUser(first);
      const task = await addTask(first, user, "Survives a restart");
      fake.enqueue(
        toolCallReply([{ id: "call_del_restart", name: "delete_task", args: { task_id: task } }]),
        textReply("Deleted after the restart."),
      );
      const paused = await sent(first, user, { content: "delete it" });
      expect(paused.turn.status).toBe("REQUIRES_ACTION");
      await first.close();
      first = undefined;

      second = await startTestServer({ db, assistant: deps });
      expect((await turnOf(second, user, paused.turn.id)).toolCalls[0]!.approval!.status).toBe("PENDING");
      await decided(second, user, paused.turn.id, [{ toolCallId: "call_del_restart", approve: true }]);
      const done = await turnAfter(second, user, paused.turn.id);
      expect(done.status).toBe("COMPLETED");
      expect(done.messages.at(-1)?.content).toBe("Deleted after the restart.");
      expect(await taskTitles(second, user)).toEqual([]);
    } finally {
      await first?.close();
      await second?.close();
      await db.$disconnect();
    }
  });

  it("should not ask about a delete of a task the user does not have: it answers not found at once", async () => {
    const owner = await newUser(a);
    const intruder = await newUser(a);
    const task = await addTask(a, owner, "Owner's");
    fake.enqueue(toolCallReply([{ id: "call_del_foreign", name: "delete_task", args: { task_id: task } }]), textReply("Not found."));
    const done = await sent(a, intruder, { content: "delete that" });
    expect(done.turn.status).toBe("COMPLETED");
    expect(done.turn.toolCalls[0]).toMatchObject({ approval: null, error: "Task not found. List the tasks to get valid ids.", tasks: [] });
    expect(await taskTitles(a, owner)).toEqual(["Owner's"]);
  });
});

describe("CHAT_APPROVAL policies", () => {
  let fake: FakeCohere;
  const servers: TestServer[] = [];

  beforeAll(async () => {
    fake = await startFakeCohere();
  });
  afterAll(async () => {
    for (const server of servers) await server.close();
    await fake?.close();
  });

  async function serverWith(policy: "none" | "all"): Promise<TestServer> {
    const server = await startTestServer({ assistant: cohereAssistant(fake, { approvalPolicy: policy }) });
    servers.push(server);
    return server;
  }

  it("should run a delete at once under CHAT_APPROVAL=none", async () => {
    const server = await serverWith("none");
    const user = await newUser(server);
    const task = await addTask(server, user, "Gone at once");
    fake.enqueue(toolCallReply([{ id: "call_del_none", name: "delete_task", args: { task_id: task } }]), textReply("Deleted."));
    const done = await sent(server, user, { content: "delete it" });
    expect(done.turn.status).toBe("COMPLETED");
    expect(done.turn.toolCalls[0]).toMatchObject({ approval: null, error: null, result: { deleted: { id: task } } });
    expect(await taskTitles(server, user)).toEqual([]);
  });

  it("should hold every write but no read under CHAT_APPROVAL=all", async () => {
    const server = await serverWith("all");
    const user = await newUser(server);
    fake.enqueue(
      toolCallReply([
        { id: "call_list_all", name: "list_tasks", args: { status: "all" } },
        { id: "call_add_all", name: "add_task", args: { title: "Needs a yes" } },
      ]),
      textReply("Added."),
    );
    const paused = await sent(server, user, { content: "add one" });
    expect(paused.turn.status).toBe("REQUIRES_ACTION");
    expect(paused.turn.toolCalls.map((call) => [call.id, call.approval?.status ?? null, call.result === null])).toEqual([
      ["call_list_all", null, false],
      ["call_add_all", "PENDING", true],
    ]);
    expect(await taskTitles(server, user)).toEqual([]);
    await decided(server, user, paused.turn.id, [{ toolCallId: "call_add_all", approve: true }]);
    expect((await turnAfter(server, user, paused.turn.id)).status).toBe("COMPLETED");
    expect(await taskTitles(server, user)).toEqual(["Needs a yes"]);
  });
});
