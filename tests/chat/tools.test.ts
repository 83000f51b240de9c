import { randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { localIso } from "../../src/lib/zoned-time.js";
import type { Message, Task } from "../../src/generated/prisma/client.js";
import { parseId, toGlobalId } from "../../src/lib/ids.js";
import { cohereAssistant, messagesIn, sendMessage, startChatRig, type SendPayload, type SendResponse, type ToolCallView } from "../helpers/chat.js";
import { textReply, toolCallReply, type FakeCohere, type RecordedRequest, type WireMessage } from "../helpers/fake-cohere.js";
import { newUser, startTestServer, type TestServer, type TestUser } from "../helpers/server.js";

/**
 * The assistant's task tools end to end: the real cohere-ai SDK against a fake
 * Cohere over HTTP, the real server, the real database. Every scenario checks
 * the rows, the persisted messages, the payload and what the model was sent.
 */

const ADD_TASK = /* GraphQL */ `
  mutation Add($input: AddTaskInput!) {
    addTask(input: $input) {
      id
      title
      description
      completed
    }
  }
`;

const COMPLETE_TASK = /* GraphQL */ `
  mutation Complete($id: ID!) {
    completeTask(id: $id) {
      id
      completed
    }
  }
`;

const TASKS = /* GraphQL */ `
  query Tasks($status: TaskStatusFilter) {
    tasks(status: $status, first: 100) {
      edges {
        node {
          id
          title
          description
          completed
        }
      }
    }
  }
`;

const TOOL_NAMES = [
  "add_task",
  "list_tasks",
  "complete_task",
  "delete_task",
  "update_task",
  "search_tasks",
  "complete_tasks",
  "delete_tasks",
  "undo_turn",
];
const NOT_FOUND = "Task not found. List the tasks to get valid ids.";
const NOT_RUN = "Not run: this exact call was already made in this turn. Use its earlier result.";

interface TaskView {
  id: string;
  title: string;
  description: string | null;
  completed: boolean;
}

/** One step of a turn as the test scripted it, to check rows, payload and wire against. */
type Expected =
  | { role: "user"; content: string }
  | { role: "step"; plan: string; calls: { id: string; name: string; arguments: string }[] }
  | { role: "tool"; callId: string; document: Record<string, unknown> }
  | { role: "reply"; content: string; stopCode?: string };

type WireCall = { id: string; name: string; args: Record<string, unknown> | string };

describe("assistant task tools", () => {
  let fake: FakeCohere;
  let server: TestServer;

  beforeAll(async () => {
    // These cases are about the tools themselves: a delete runs at once (approval has its own tests, approval*.test.ts).
    ({ fake, server } = await startChatRig({ assistant: { approvalPolicy: "none" } }));
  });
  afterAll(async () => {
    await server?.close();
    await fake?.close();
  });

  // ---------------------------------------------------------------- helpers

  /** Sends a message and returns the payload plus the model requests this turn made. */
  async function send(
    user: TestUser,
    content: string,
    options: { expectedCalls: number; target?: TestServer; conversationId?: string },
  ): Promise<{ response: SendResponse; payload: SendPayload; requests: RecordedRequest[] }> {
    const start = fake.requests.length;
    const input = options.conversationId === undefined ? { content } : { content, conversationId: options.conversationId };
    const response = await sendMessage(user, input, options.target ?? server);
    const requests = fake.requests.slice(start);
    expect(requests).toHaveLength(options.expectedCalls);
    expect(fake.pending()).toBe(0);
    const payload = response.data?.sendMessage as SendPayload;
    expect(payload).toBeTruthy();
    return { response, payload, requests };
  }

  async function addTask(user: TestUser, title: string, description?: string): Promise<TaskView> {
    const response = await user.gql(ADD_TASK, { input: description === undefined ? { title } : { title, description } });
    expect(response.errors).toBeUndefined();
    return response.data?.addTask as TaskView;
  }

  async function completeTask(user: TestUser, id: string): Promise<void> {
    const response = await user.gql(COMPLETE_TASK, { id });
    expect(response.errors).toBeUndefined();
    expect(response.data?.completeTask).toEqual({ id, completed: true });
  }

  async function tasksOf(user: TestUser, status: "ALL" | "PENDING" | "COMPLETED" = "ALL"): Promise<TaskView[]> {
    const response = await user.gql(TASKS, { status });
    expect(response.errors).toBeUndefined();
    return (response.data?.tasks.edges as { node: TaskView }[]).map((edge) => edge.node);
  }

  function rowsOf(userId: string): Promise<Task[]> {
    return server.db.task.findMany({ where: { userId }, orderBy: { title: "asc" } });
  }

  function taskRow(globalId: string): Promise<Task | null> {
    return server.db.task.findUnique({ where: { id: parseId(globalId, "id", "Task") } });
  }

  /** The tool output shape for a task: the global id, snake_case, times local to the user's zone (UTC here) with the offset. */
  function toolTask(row: Task): Record<string, unknown> {
    const local = (date: Date | null) => (date === null ? null : localIso(date.getTime(), "UTC"));
    return {
      id: toGlobalId("Task", row.id),
      title: row.title,
      description: row.description,
      completed: row.completed,
      created_at: local(row.createdAt),
      due: local(row.dueAt),
      priority: row.priority.toLowerCase(),
      labels: row.labels,
      completed_at: local(row.completedAt),
      recurrence: row.recurrence,
    };
  }

  function argsString(args: Record<string, unknown> | string): string {
    return typeof args === "string" ? args : JSON.stringify(args);
  }

  function step(plan: string, calls: WireCall[]): Expected {
    return { role: "step", plan, calls: calls.map((c) => ({ id: c.id, name: c.name, arguments: argsString(c.args) })) };
  }

  /**
   * The persisted turn, and the payload, are exactly `expected`: seq 1..n,
   * roles, contents, tool plans and calls on steps, toolCallId and the JSON
   * document on tool messages, the stop code on a bounded reply.
   */
  async function expectTurn(user: TestUser, payload: SendPayload, expected: Expected[]): Promise<Message[]> {
    const rows = await messagesIn(server.db, payload.conversation.id);
    expect(rows.map((row) => row.seq)).toEqual(expected.map((_, index) => index + 1));
    expect(rows.every((row) => row.userId === user.id)).toBe(true);

    expected.forEach((want, index) => {
      const row = rows[index]!;
      switch (want.role) {
        case "user":
          expect(row).toMatchObject({ role: "user", content: want.content, toolCalls: null, toolCallId: null });
          break;
        case "step":
          expect(row).toMatchObject({ role: "assistant", toolPlan: want.plan, toolCallId: null, stopCode: null });
          expect(row.toolCalls).toEqual(
            want.calls.map((call) => ({ id: call.id, type: "function", function: { name: call.name, arguments: call.arguments } })),
          );
          break;
        case "tool":
          expect(row).toMatchObject({ role: "tool", toolCallId: want.callId, toolCalls: null, toolPlan: null });
          expect(JSON.parse(row.content)).toEqual(want.document);
          break;
        case "reply":
          expect(row).toMatchObject({ role: "assistant", content: want.content, toolCalls: null, toolCallId: null });
          expect(row.stopCode).toBe(want.stopCode ?? null);
          break;
      }
    });

    // The payload is the same turn, message for message.
    expect(payload.messages.map((m) => ({ id: m.id, role: m.role, content: m.content, seq: m.seq, toolCallId: m.toolCallId }))).toEqual(
      rows.map((row) => ({
        id: toGlobalId("Message", row.id),
        role: row.role.toUpperCase(),
        content: row.content,
        seq: row.seq,
        toolCallId: row.toolCallId,
      })),
    );
    expect(payload.userMessage).toEqual({ id: toGlobalId("Message", rows[0]!.id), role: "USER", content: rows[0]!.content, seq: 1 });
    const last = rows.at(-1)!;
    expect(payload.reply).toEqual({
      id: toGlobalId("Message", last.id),
      role: "ASSISTANT",
      content: last.content,
      seq: last.seq,
      toolCalls: [],
      toolCallId: null,
    });

    // Every call, in order, with its own result or error, on the payload and on its message.
    const documents = new Map(expected.flatMap((want) => (want.role === "tool" ? [[want.callId, want.document] as const] : [])));
    const calls = expected.flatMap((want) => (want.role === "step" ? want.calls : []));
    const views = calls.map((call) => {
      const document = documents.get(call.id);
      expect(document, `no tool message for ${call.id}`).toBeDefined();
      const error = typeof document?.error === "string" ? document.error : null;
      let args: unknown;
      try {
        args = JSON.parse(call.arguments);
      } catch {
        args = call.arguments;
      }
      return { id: call.id, name: call.name, arguments: args, result: error === null ? document : null, error };
    });
    expect(payload.toolCalls).toEqual(views);
    payload.messages.forEach((message, index) => {
      const want = expected[index]!;
      const own = want.role === "step" ? views.filter((view) => want.calls.some((call) => call.id === view.id)) : [];
      expect(message.toolCalls).toEqual(own);
    });
    return rows;
  }

  /**
   * What the model was sent, exactly: the system preamble, then the turn so
   * far in Cohere v2's wire shape (tool_plan, tool_calls with JSON-string
   * arguments, tool results as document content keyed by tool_call_id).
   */
  function expectWire(request: RecordedRequest, expected: Expected[]): void {
    const messages = request.body.messages;
    expect(messages.map((m) => m.role)).toEqual([
      "system",
      ...expected.map((want) => (want.role === "step" || want.role === "reply" ? "assistant" : want.role)),
    ]);
    expect(messages[0]!.content).toEqual(expect.stringContaining("todo list"));
    const wire: WireMessage[] = expected.map((want) => {
      switch (want.role) {
        case "user":
          return { role: "user", content: want.content };
        case "step":
          return {
            role: "assistant",
            tool_plan: want.plan,
            tool_calls: want.calls.map((call) => ({ id: call.id, type: "function", function: { name: call.name, arguments: call.arguments } })),
          };
        case "tool":
          return { role: "tool", tool_call_id: want.callId, content: [{ type: "document", document: { data: want.document } }] };
        case "reply":
          return { role: "assistant", content: want.content };
      }
    });
    expect(messages.slice(1)).toEqual(wire);
    // Spelled out, since this is what Cohere rejects when it is wrong.
    for (const message of messages) {
      for (const call of message.tool_calls ?? []) expect(typeof call.function.arguments).toBe("string");
      if (message.role === "tool") {
        const content = message.content as { type: string; document: { data: unknown } }[];
        expect(content[0]!.type).toBe("document");
      }
    }
    expect(request.body.tools?.map((tool) => tool.function.name)).toEqual(TOOL_NAMES);
  }

  /** The tool result the model was handed for `callId` in `request`. */
  function wireResult(request: RecordedRequest, callId: string): Record<string, any> {
    const matches = request.body.messages.filter((m) => m.role === "tool" && m.tool_call_id === callId);
    expect(matches).toHaveLength(1);
    const content = matches[0]!.content as { type: string; document: { data: Record<string, any> } }[];
    expect(content).toHaveLength(1);
    expect(content[0]!.type).toBe("document");
    return content[0]!.document.data;
  }

  function callById(payload: SendPayload, id: string): ToolCallView {
    const call = payload.toolCalls.find((c) => c.id === id);
    expect(call, `no tool call ${id}`).toBeDefined();
    return call!;
  }

  // ---------------------------------------------------------------- each tool

  describe("each tool end to end", () => {
    it("should run add_task with a description and create the caller's task", async () => {
      const user = await newUser(server);
      const call: WireCall = { id: "call_add_1", name: "add_task", args: { title: "  Buy milk  ", description: "Two litres, semi-skimmed" } };
      fake.enqueue(toolCallReply([call], "I will add the task."), textReply("Added Buy milk."));

      const { response, payload, requests } = await send(user, "add buy milk, two litres", { expectedCalls: 2 });
      expect(response.errors).toBeUndefined();

      const rows = await rowsOf(user.id);
      expect(rows).toHaveLength(1);
      const row = rows[0]!;
      expect(row).toMatchObject({ userId: user.id, title: "Buy milk", description: "Two litres, semi-skimmed", completed: false });
      const result = toolTask(row);

      const turn: Expected[] = [
        { role: "user", content: "add buy milk, two litres" },
        step("I will add the task.", [call]),
        { role: "tool", callId: "call_add_1", document: result },
        { role: "reply", content: "Added Buy milk." },
      ];
      await expectTurn(user, payload, turn);
      expect(callById(payload, "call_add_1")).toEqual({
        id: "call_add_1",
        name: "add_task",
        arguments: { title: "  Buy milk  ", description: "Two litres, semi-skimmed" },
        result,
        error: null,
      });

      // The first request carries only the user message; the second the step and its result.
      expectWire(requests[0]!, turn.slice(0, 1));
      expectWire(requests[1]!, turn.slice(0, 3));
      expect(wireResult(requests[1]!, "call_add_1")).toEqual(result);

      // The id the model saw is the task's GraphQL id.
      expect(await tasksOf(user)).toEqual([{ id: result.id, title: "Buy milk", description: "Two litres, semi-skimmed", completed: false }]);
    });

    it("should run list_tasks for all, pending and completed with only the caller's tasks", async () => {
      const user = await newUser(server);
      const other = await newUser(server, "other");
      const pending = await addTask(user, "Water plants");
      const done = await addTask(user, "Pay rent", "Before the 5th");
      await completeTask(user, done.id);
      await addTask(other, "Other's pending secret");
      const otherDone = await addTask(other, "Other's completed secret");
      await completeTask(other, otherDone.id);

      const calls: WireCall[] = [
        { id: "call_list_all", name: "list_tasks", args: { status: "all" } },
        { id: "call_list_pending", name: "list_tasks", args: { status: "pending" } },
        { id: "call_list_completed", name: "list_tasks", args: { status: "completed" } },
        { id: "call_list_default", name: "list_tasks", args: {} },
      ];
      fake.enqueue(
        toolCallReply(calls.slice(0, 1), "List everything."),
        toolCallReply(calls.slice(1, 2), "Now the pending ones."),
        toolCallReply(calls.slice(2, 3), "Now the completed ones."),
        toolCallReply(calls.slice(3, 4), "And with the default status."),
        textReply("You have one pending and one completed task."),
      );

      const { response, payload, requests } = await send(user, "what are my tasks?", { expectedCalls: 5 });
      expect(response.errors).toBeUndefined();

      const pendingRow = (await taskRow(pending.id))!;
      const doneRow = (await taskRow(done.id))!;
      const allOrder = (await tasksOf(user, "ALL")).map((t) => t.id);
      expect([...allOrder].sort()).toEqual([pending.id, done.id].sort());
      const byId = new Map([
        [pending.id, toolTask(pendingRow)],
        [done.id, toolTask(doneRow)],
      ]);
      const all = { tasks: allOrder.map((id) => byId.get(id)), count: 2, truncated: false };
      const pendingOnly = { tasks: [toolTask(pendingRow)], count: 1, truncated: false };
      const completedOnly = { tasks: [toolTask(doneRow)], count: 1, truncated: false };
      expect(toolTask(doneRow)).toMatchObject({ title: "Pay rent", description: "Before the 5th", completed: true });
      expect(toolTask(pendingRow)).toMatchObject({ title: "Water plants", description: null, completed: false });

      const turn: Expected[] = [
        { role: "user", content: "what are my tasks?" },
        step("List everything.", calls.slice(0, 1)),
        { role: "tool", callId: "call_list_all", document: all },
        step("Now the pending ones.", calls.slice(1, 2)),
        { role: "tool", callId: "call_list_pending", document: pendingOnly },
        step("Now the completed ones.", calls.slice(2, 3)),
        { role: "tool", callId: "call_list_completed", document: completedOnly },
        step("And with the default status.", calls.slice(3, 4)),
        { role: "tool", callId: "call_list_default", document: all },
        { role: "reply", content: "You have one pending and one completed task." },
      ];
      await expectTurn(user, payload, turn);
      for (let index = 0; index < 5; index += 1) expectWire(requests[index]!, turn.slice(0, 1 + 2 * index));
      expect(wireResult(requests[4]!, "call_list_completed")).toEqual(completedOnly);

      // Nothing of the other user's reached the model.
      const otherTitles = (await tasksOf(other)).map((t) => t.title);
      expect(otherTitles).toHaveLength(2);
      for (const request of requests) {
        const sent = JSON.stringify(request.body.messages);
        for (const title of otherTitles) expect(sent).not.toContain(title);
      }
      for (const call of payload.toolCalls) {
        for (const task of call.result?.tasks ?? []) expect([pending.id, done.id]).toContain(task.id);
      }
      // Listing wrote nothing.
      expect(await rowsOf(user.id)).toEqual([doneRow, pendingRow]);
    });

    it("should run complete_task and mark the task completed", async () => {
      const user = await newUser(server);
      const task = await addTask(user, "File taxes");
      const call: WireCall = { id: "call_complete", name: "complete_task", args: { task_id: task.id } };
      fake.enqueue(toolCallReply([call], "Mark it done."), textReply("Done."));

      const { response, payload, requests } = await send(user, "I filed my taxes", { expectedCalls: 2 });
      expect(response.errors).toBeUndefined();

      const row = (await taskRow(task.id))!;
      expect(row).toMatchObject({ userId: user.id, title: "File taxes", completed: true });
      const result = toolTask(row);
      expect(result.id).toBe(task.id);
      const turn: Expected[] = [
        { role: "user", content: "I filed my taxes" },
        step("Mark it done.", [call]),
        { role: "tool", callId: "call_complete", document: result },
        { role: "reply", content: "Done." },
      ];
      await expectTurn(user, payload, turn);
      expectWire(requests[1]!, turn.slice(0, 3));
      expect(wireResult(requests[1]!, "call_complete")).toEqual(result);
      expect(await tasksOf(user, "COMPLETED")).toEqual([{ ...task, completed: true }]);
      expect(await tasksOf(user, "PENDING")).toEqual([]);
    });

    it("should run delete_task, answer { deleted } and remove the row", async () => {
      const user = await newUser(server);
      const keep = await addTask(user, "Keep me");
      const task = await addTask(user, "Cancel gym", "Membership ends in May");
      const before = (await taskRow(task.id))!;
      const call: WireCall = { id: "call_delete", name: "delete_task", args: { task_id: task.id } };
      fake.enqueue(toolCallReply([call], "Delete it."), textReply("Deleted."));

      const { response, payload, requests } = await send(user, "forget the gym", { expectedCalls: 2 });
      expect(response.errors).toBeUndefined();

      expect(await taskRow(task.id)).toBeNull();
      expect((await rowsOf(user.id)).map((r) => r.title)).toEqual(["Keep me"]);
      const result = { deleted: toolTask(before) };
      expect(result.deleted).toMatchObject({ id: task.id, title: "Cancel gym", description: "Membership ends in May", completed: false });
      const turn: Expected[] = [
        { role: "user", content: "forget the gym" },
        step("Delete it.", [call]),
        { role: "tool", callId: "call_delete", document: result },
        { role: "reply", content: "Deleted." },
      ];
      await expectTurn(user, payload, turn);
      expectWire(requests[1]!, turn.slice(0, 3));
      expect(wireResult(requests[1]!, "call_delete")).toEqual(result);
      expect((await tasksOf(user)).map((t) => t.id)).toEqual([keep.id]);
    });

    it("should run update_task on the title and description, and clear the description with an empty one", async () => {
      const user = await newUser(server);
      const task = await addTask(user, "Call dentist", "Old note");
      const rename: WireCall = {
        id: "call_update",
        name: "update_task",
        args: { task_id: task.id, title: "Call the dentist", description: "Ask about Tuesday" },
      };
      const clear: WireCall = { id: "call_clear", name: "update_task", args: { task_id: task.id, description: "" } };
      fake.enqueue(toolCallReply([rename], "Update it."), toolCallReply([clear], "Clear the note."), textReply("Updated."));

      const { response, payload, requests } = await send(user, "rename the dentist task", { expectedCalls: 3 });
      expect(response.errors).toBeUndefined();

      const row = (await taskRow(task.id))!;
      expect(row).toMatchObject({ userId: user.id, title: "Call the dentist", description: null, completed: false });
      const renamed = { ...toolTask(row), description: "Ask about Tuesday" };
      const cleared = toolTask(row);
      const turn: Expected[] = [
        { role: "user", content: "rename the dentist task" },
        step("Update it.", [rename]),
        { role: "tool", callId: "call_update", document: renamed },
        step("Clear the note.", [clear]),
        { role: "tool", callId: "call_clear", document: cleared },
        { role: "reply", content: "Updated." },
      ];
      await expectTurn(user, payload, turn);
      expectWire(requests[1]!, turn.slice(0, 3));
      expectWire(requests[2]!, turn.slice(0, 5));
      expect(wireResult(requests[1]!, "call_update")).toEqual(renamed);
      expect(wireResult(requests[2]!, "call_clear")).toEqual(cleared);
      expect(await tasksOf(user)).toEqual([{ id: task.id, title: "Call the dentist", description: null, completed: false }]);
    });
  });

  // ---------------------------------------------------------------- loop shape

  it("should run two tool calls from one response and answer both in call order", async () => {
    const user = await newUser(server);
    const calls: WireCall[] = [
      { id: "call_first", name: "add_task", args: { title: "Eggs" } },
      { id: "call_second", name: "add_task", args: { title: "Flour", description: "Plain" } },
    ];
    fake.enqueue(toolCallReply(calls, "Add both."), textReply("Added Eggs and Flour."));

    const { response, payload, requests } = await send(user, "add eggs and flour", { expectedCalls: 2 });
    expect(response.errors).toBeUndefined();

    const rows = await rowsOf(user.id);
    expect(rows.map((r) => [r.title, r.description, r.completed])).toEqual([
      ["Eggs", null, false],
      ["Flour", "Plain", false],
    ]);
    const eggs = toolTask(rows[0]!);
    const flour = toolTask(rows[1]!);
    const turn: Expected[] = [
      { role: "user", content: "add eggs and flour" },
      step("Add both.", calls),
      { role: "tool", callId: "call_first", document: eggs },
      { role: "tool", callId: "call_second", document: flour },
      { role: "reply", content: "Added Eggs and Flour." },
    ];
    await expectTurn(user, payload, turn);
    expect(payload.toolCalls.map((c) => c.id)).toEqual(["call_first", "call_second"]);
    expectWire(requests[1]!, turn.slice(0, 4));
    expect(wireResult(requests[1]!, "call_first")).toEqual(eggs);
    expect(wireResult(requests[1]!, "call_second")).toEqual(flour);
  });

  it("should give calls the model sent without an id distinct ids, so every step's call runs and is answered", async () => {
    const user = await newUser(server);
    const withoutId = (title: string, plan: string) => {
      const reply = toolCallReply([{ name: "add_task", args: { title } }], plan);
      const body = reply.body as { message: { tool_calls: { id?: string }[] } };
      for (const call of body.message.tool_calls) delete call.id;
      return reply;
    };
    fake.enqueue(withoutId("First", "Add the first."), withoutId("Second", "Add the second."), textReply("Added both."));

    const { response, payload, requests } = await send(user, "add first and second", { expectedCalls: 3 });
    expect(response.errors).toBeUndefined();

    const rows = await rowsOf(user.id);
    expect(rows.map((r) => r.title)).toEqual(["First", "Second"]);
    const ids = payload.toolCalls.map((call) => call.id);
    expect(ids).toHaveLength(2);
    expect(new Set(ids).size).toBe(2);
    const [firstId, secondId] = ids as [string, string];
    const first = rows.find((r) => r.title === "First")!;
    const second = rows.find((r) => r.title === "Second")!;
    const turn: Expected[] = [
      { role: "user", content: "add first and second" },
      step("Add the first.", [{ id: firstId, name: "add_task", args: { title: "First" } }]),
      { role: "tool", callId: firstId, document: toolTask(first) },
      step("Add the second.", [{ id: secondId, name: "add_task", args: { title: "Second" } }]),
      { role: "tool", callId: secondId, document: toolTask(second) },
      { role: "reply", content: "Added both." },
    ];
    await expectTurn(user, payload, turn);
    // Every call the model is shown has its own answer.
    expectWire(requests[2]!, turn.slice(0, 5));
    expect(wireResult(requests[2]!, secondId)).toEqual(toolTask(second));
  });

  it("should give a call whose id an earlier step already used a fresh id, so it runs and is answered", async () => {
    const user = await newUser(server);
    fake.enqueue(
      toolCallReply([{ id: "call_same", name: "add_task", args: { title: "First" } }], "Add the first."),
      toolCallReply([{ id: "call_same", name: "add_task", args: { title: "Second" } }], "Add the second."),
      textReply("Added both."),
    );

    const { response, payload, requests } = await send(user, "add first then second", { expectedCalls: 3 });
    expect(response.errors).toBeUndefined();

    const rows = await rowsOf(user.id);
    expect(rows.map((r) => r.title)).toEqual(["First", "Second"]);
    const ids = payload.toolCalls.map((call) => call.id);
    expect(ids[0]).toBe("call_same");
    expect(ids[1]).not.toBe("call_same");
    const second = rows.find((r) => r.title === "Second")!;
    expect(wireResult(requests[2]!, ids[1]!)).toEqual(toolTask(second));
  });

  it("should chain steps: complete_task with the id the model read from list_tasks", async () => {
    const user = await newUser(server);
    const mom = await addTask(user, "Call mom");
    const other = await addTask(user, "Book flights");
    const list: WireCall = { id: "call_list", name: "list_tasks", args: { status: "pending" } };
    let complete: WireCall | undefined;
    fake.enqueue(
      toolCallReply([list], "Find the task first."),
      (request) => {
        // The model only knows what it was sent: take the id from the tool result in this request.
        const toolMessage = request.body.messages.find((m) => m.role === "tool" && m.tool_call_id === "call_list");
        const content = toolMessage?.content as { type: string; document: { data: { tasks: { id: string; title: string }[] } } }[];
        const id = content[0]!.document.data.tasks.find((t) => t.title === "Call mom")!.id;
        complete = { id: "call_complete_mom", name: "complete_task", args: { task_id: id } };
        return toolCallReply([complete], "Complete it.");
      },
      textReply("Marked Call mom as done."),
    );

    const { response, payload, requests } = await send(user, "I called mom", { expectedCalls: 3 });
    expect(response.errors).toBeUndefined();
    expect(complete?.args).toEqual({ task_id: mom.id });

    const momRow = (await taskRow(mom.id))!;
    const otherRow = (await taskRow(other.id))!;
    expect(momRow.completed).toBe(true);
    expect(otherRow.completed).toBe(false);
    const pendingBefore = wireResult(requests[1]!, "call_list");
    expect((pendingBefore.tasks as { id: string }[]).map((t) => t.id).sort()).toEqual([mom.id, other.id].sort());
    expect(pendingBefore.tasks).toContainEqual({ ...toolTask(momRow), completed: false, completed_at: null });
    expect(pendingBefore.tasks).toContainEqual(toolTask(otherRow));

    const turn: Expected[] = [
      { role: "user", content: "I called mom" },
      step("Find the task first.", [list]),
      { role: "tool", callId: "call_list", document: pendingBefore },
      step("Complete it.", [complete!]),
      { role: "tool", callId: "call_complete_mom", document: toolTask(momRow) },
      { role: "reply", content: "Marked Call mom as done." },
    ];
    await expectTurn(user, payload, turn);
    expectWire(requests[1]!, turn.slice(0, 3));
    expectWire(requests[2]!, turn.slice(0, 5));
    expect(wireResult(requests[2]!, "call_complete_mom")).toEqual(toolTask(momRow));
  });

  // ---------------------------------------------------------------- errors the model can read

  it("should turn malformed JSON arguments into a tool error the model can read", async () => {
    const user = await newUser(server);
    const broken: WireCall = { id: "call_broken", name: "add_task", args: '{"title": "Broken' };
    fake.enqueue(toolCallReply([broken], "Add it."), textReply("Sorry, that did not work."));

    const { response, payload, requests } = await send(user, "add broken", { expectedCalls: 2 });
    expect(response.errors).toBeUndefined();

    const call = callById(payload, "call_broken");
    expect(call.arguments).toBe('{"title": "Broken');
    expect(call.result).toBeNull();
    expect(call.error).toMatch(/^Invalid arguments for add_task: arguments are not valid JSON \(.+\)$/);
    const document = { error: call.error };
    const turn: Expected[] = [
      { role: "user", content: "add broken" },
      step("Add it.", [broken]),
      { role: "tool", callId: "call_broken", document },
      { role: "reply", content: "Sorry, that did not work." },
    ];
    await expectTurn(user, payload, turn);
    expectWire(requests[1]!, turn.slice(0, 3));
    expect(requests[1]!.body.messages[2]!.tool_calls?.[0]?.function.arguments).toBe('{"title": "Broken');
    expect(wireResult(requests[1]!, "call_broken")).toEqual(document);
    expect(await rowsOf(user.id)).toEqual([]);
  });

  it("should answer an unknown tool name with an error listing the available tools", async () => {
    const user = await newUser(server);
    const unknown: WireCall = { id: "call_unknown", name: "send_email", args: { to: "boss@example.com" } };
    fake.enqueue(toolCallReply([unknown], "Email the boss."), textReply("I cannot send email."));

    const { response, payload, requests } = await send(user, "email my boss", { expectedCalls: 2 });
    expect(response.errors).toBeUndefined();

    const error =
      'Unknown tool "send_email". Available tools: add_task, list_tasks, complete_task, delete_task, update_task, search_tasks, complete_tasks, delete_tasks, undo_turn.';
    expect(callById(payload, "call_unknown")).toEqual({
      id: "call_unknown",
      name: "send_email",
      arguments: { to: "boss@example.com" },
      result: null,
      error,
    });
    const turn: Expected[] = [
      { role: "user", content: "email my boss" },
      step("Email the boss.", [unknown]),
      { role: "tool", callId: "call_unknown", document: { error } },
      { role: "reply", content: "I cannot send email." },
    ];
    await expectTurn(user, payload, turn);
    expectWire(requests[1]!, turn.slice(0, 3));
    expect(wireResult(requests[1]!, "call_unknown")).toEqual({ error });
    expect(await rowsOf(user.id)).toEqual([]);
  });

  it("should reject arguments that fail validation as tool errors and write nothing", async () => {
    const user = await newUser(server);
    const task = await addTask(user, "Existing", "Untouched");
    const before = await rowsOf(user.id);
    const rawUuid = parseId(task.id, "id", "Task");
    const calls: WireCall[] = [
      { id: "call_empty", name: "add_task", args: { title: "" } },
      { id: "call_blank", name: "add_task", args: { title: "   " } },
      { id: "call_long", name: "add_task", args: { title: "x".repeat(201) } },
      { id: "call_missing", name: "complete_task", args: {} },
      { id: "call_uuid", name: "complete_task", args: { task_id: rawUuid } },
      { id: "call_garbage", name: "delete_task", args: { task_id: "garbage" } },
      { id: "call_number", name: "update_task", args: { task_id: 42, title: "New" } },
    ];
    fake.enqueue(toolCallReply(calls, "Try them all."), textReply("None of that worked."));

    const { response, payload, requests } = await send(user, "do invalid things", { expectedCalls: 2 });
    expect(response.errors).toBeUndefined();

    const errors = Object.fromEntries(payload.toolCalls.map((c) => [c.id, c.error]));
    expect(errors.call_empty).toMatch(/^Invalid arguments for add_task: title: title must not be empty$/);
    expect(errors.call_blank).toMatch(/^Invalid arguments for add_task: title: title must not be empty$/);
    expect(errors.call_long).toMatch(/^Invalid arguments for add_task: title: title must be at most 200 characters$/);
    expect(errors.call_missing).toMatch(/^Invalid arguments for complete_task: task_id: /);
    expect(errors.call_uuid).toBe(`task_id "${rawUuid}" is not a task id; use an id that add_task or list_tasks returned`);
    expect(errors.call_garbage).toBe('task_id "garbage" is not a task id; use an id that add_task or list_tasks returned');
    expect(errors.call_number).toMatch(/^Invalid arguments for update_task: task_id: /);
    for (const call of payload.toolCalls) expect(call.result).toBeNull();

    const turn: Expected[] = [
      { role: "user", content: "do invalid things" },
      step("Try them all.", calls),
      ...calls.map((call): Expected => ({ role: "tool", callId: call.id, document: { error: errors[call.id] } })),
      { role: "reply", content: "None of that worked." },
    ];
    await expectTurn(user, payload, turn);
    expectWire(requests[1]!, turn.slice(0, 2 + calls.length));
    for (const call of calls) expect(wireResult(requests[1]!, call.id)).toEqual({ error: errors[call.id] });
    expect(await rowsOf(user.id)).toEqual(before);
  });

  it("should not touch another user's task: complete, delete and update answer Task not found", async () => {
    const owner = await newUser(server, "owner");
    const intruder = await newUser(server, "intruder");
    const task = await addTask(owner, "Owner's task", "Private");
    const before = (await taskRow(task.id))!;
    const calls: WireCall[] = [
      { id: "call_foreign_complete", name: "complete_task", args: { task_id: task.id } },
      { id: "call_foreign_update", name: "update_task", args: { task_id: task.id, title: "Hijacked", description: "" } },
      { id: "call_foreign_delete", name: "delete_task", args: { task_id: task.id } },
    ];
    fake.enqueue(toolCallReply(calls, "Change that task."), textReply("I could not find that task."));

    const { response, payload, requests } = await send(intruder, "mess with that task", { expectedCalls: 2 });
    expect(response.errors).toBeUndefined();

    for (const call of payload.toolCalls) expect(call).toMatchObject({ result: null, error: NOT_FOUND });
    const turn: Expected[] = [
      { role: "user", content: "mess with that task" },
      step("Change that task.", calls),
      ...calls.map((call): Expected => ({ role: "tool", callId: call.id, document: { error: NOT_FOUND } })),
      { role: "reply", content: "I could not find that task." },
    ];
    await expectTurn(intruder, payload, turn);
    expectWire(requests[1]!, turn.slice(0, 5));

    expect(await taskRow(task.id)).toEqual(before);
    expect(await rowsOf(intruder.id)).toEqual([]);
    expect(await tasksOf(owner)).toEqual([{ id: task.id, title: "Owner's task", description: "Private", completed: false }]);
  });

  // ---------------------------------------------------------------- bounds

  it("should stop at the step limit with the payload and ASSISTANT_STEP_LIMIT", async () => {
    const limited = await startTestServer({ assistant: cohereAssistant(fake, { maxSteps: 3 }) });
    try {
      const user = await newUser(limited);
      const statuses = ["all", "pending", "completed"] as const;
      const made: WireCall[] = [];
      fake.setFallback(() => {
        const call: WireCall = {
          id: `call_loop_${made.length + 1}_${randomUUID()}`,
          name: "list_tasks",
          args: { status: statuses[made.length % 3]! },
        };
        made.push(call);
        return toolCallReply([call], `Step ${made.length}.`);
      });

      let sent;
      try {
        sent = await send(user, "keep looking", { expectedCalls: 3, target: limited });
      } finally {
        fake.setFallback(undefined);
      }
      const { response, payload, requests } = sent;
      expect(made).toHaveLength(3);

      const stop =
        "I stopped before finishing: this request needed more than 3 steps. Changes made so far are kept; please check your tasks or rephrase.";
      const empty = { tasks: [], count: 0, truncated: false };
      const turn: Expected[] = [
        { role: "user", content: "keep looking" },
        ...made.flatMap((call, index): Expected[] => [step(`Step ${index + 1}.`, [call]), { role: "tool", callId: call.id, document: empty }]),
        { role: "reply", content: stop, stopCode: "ASSISTANT_STEP_LIMIT" },
      ];
      await expectTurn(user, payload, turn);
      expect(payload.reply?.content).toBe(stop);
      expect(response.errors).toHaveLength(1);
      expect(response.errors?.[0]).toMatchObject({
        message: stop,
        path: ["sendMessage"],
        extensions: { code: "ASSISTANT_STEP_LIMIT", retryable: true },
      });
      for (let index = 0; index < 3; index += 1) expectWire(requests[index]!, turn.slice(0, 1 + 2 * index));
    } finally {
      await limited.close();
    }
  });

  describe("repeated tool calls", () => {
    it("should not run the same add_task twice and end with ASSISTANT_REPEATED_TOOL_CALL", async () => {
      const user = await newUser(server);
      const first: WireCall = { id: "call_x_1", name: "add_task", args: { title: "X" } };
      const again: WireCall = { id: "call_x_2", name: "add_task", args: { title: "X" } };
      fake.enqueue(toolCallReply([first], "Add X."), toolCallReply([again], "Add X again."));

      const { response, payload, requests } = await send(user, "add X", { expectedCalls: 2 });

      const rows = await rowsOf(user.id);
      expect(rows.map((r) => r.title)).toEqual(["X"]);
      const added = toolTask(rows[0]!);
      const stop =
        'I stopped before finishing: I was repeating the same action (add_task({"title":"X"})). Changes made so far are kept; please check your tasks.';
      const turn: Expected[] = [
        { role: "user", content: "add X" },
        step("Add X.", [first]),
        { role: "tool", callId: "call_x_1", document: added },
        step("Add X again.", [again]),
        { role: "tool", callId: "call_x_2", document: { error: NOT_RUN } },
        { role: "reply", content: stop, stopCode: "ASSISTANT_REPEATED_TOOL_CALL" },
      ];
      await expectTurn(user, payload, turn);
      expect(callById(payload, "call_x_2")).toMatchObject({ result: null, error: NOT_RUN });
      expect(response.errors).toHaveLength(1);
      expect(response.errors?.[0]).toMatchObject({
        message: stop,
        path: ["sendMessage"],
        extensions: { code: "ASSISTANT_REPEATED_TOOL_CALL", retryable: true },
      });
      expectWire(requests[1]!, turn.slice(0, 3));
    });

    it("should treat the same read with no write in between as a repeat", async () => {
      const user = await newUser(server);
      const first: WireCall = { id: "call_read_1", name: "list_tasks", args: { status: "all" } };
      const again: WireCall = { id: "call_read_2", name: "list_tasks", args: { status: "all" } };
      fake.enqueue(toolCallReply([first], "Look."), toolCallReply([again], "Look again."));

      const { response, payload } = await send(user, "look twice", { expectedCalls: 2 });

      const turn: Expected[] = [
        { role: "user", content: "look twice" },
        step("Look.", [first]),
        { role: "tool", callId: "call_read_1", document: { tasks: [], count: 0, truncated: false } },
        step("Look again.", [again]),
        { role: "tool", callId: "call_read_2", document: { error: NOT_RUN } },
        {
          role: "reply",
          content:
            'I stopped before finishing: I was repeating the same action (list_tasks({"status":"all"})). Changes made so far are kept; please check your tasks.',
          stopCode: "ASSISTANT_REPEATED_TOOL_CALL",
        },
      ];
      await expectTurn(user, payload, turn);
      expect(response.errors?.map((e) => e.extensions?.code)).toEqual(["ASSISTANT_REPEATED_TOOL_CALL"]);
    });

    it("should not count list_tasks, complete_task, list_tasks (same args) as a repeat", async () => {
      const user = await newUser(server);
      const task = await addTask(user, "Read a book");
      const list1: WireCall = { id: "call_relist_1", name: "list_tasks", args: { status: "all" } };
      const complete: WireCall = { id: "call_relist_done", name: "complete_task", args: { task_id: task.id } };
      const list2: WireCall = { id: "call_relist_2", name: "list_tasks", args: { status: "all" } };
      fake.enqueue(
        toolCallReply([list1], "List."),
        toolCallReply([complete], "Complete."),
        toolCallReply([list2], "List again to confirm."),
        textReply("Read a book is done."),
      );

      const { response, payload, requests } = await send(user, "I read the book", { expectedCalls: 4 });
      expect(response.errors).toBeUndefined();

      const row = (await taskRow(task.id))!;
      expect(row.completed).toBe(true);
      const turn: Expected[] = [
        { role: "user", content: "I read the book" },
        step("List.", [list1]),
        {
          role: "tool",
          callId: "call_relist_1",
          document: { tasks: [{ ...toolTask(row), completed: false, completed_at: null }], count: 1, truncated: false },
        },
        step("Complete.", [complete]),
        { role: "tool", callId: "call_relist_done", document: toolTask(row) },
        step("List again to confirm.", [list2]),
        { role: "tool", callId: "call_relist_2", document: { tasks: [toolTask(row)], count: 1, truncated: false } },
        { role: "reply", content: "Read a book is done." },
      ];
      await expectTurn(user, payload, turn);
      expectWire(requests[3]!, turn.slice(0, 7));
    });
  });

  // ---------------------------------------------------------------- tool schemas and the user

  it("should send the nine tools with JSON-schema parameters and no user parameter", async () => {
    const user = await newUser(server);
    fake.enqueue(textReply("Hello."));

    const { response, requests } = await send(user, "hi", { expectedCalls: 1 });
    expect(response.errors).toBeUndefined();

    const tools = requests[0]!.body.tools!;
    expect(tools.map((tool) => tool.type)).toEqual(TOOL_NAMES.map(() => "function"));
    expect(tools.map((tool) => tool.function.name)).toEqual(TOOL_NAMES);
    const parameters = Object.fromEntries(
      tools.map((tool) => [tool.function.name, tool.function.parameters as { type: string; properties: Record<string, any>; required?: string[] }]),
    );
    for (const schema of Object.values(parameters)) expect(schema.type).toBe("object");
    for (const tool of tools) expect((tool.function as { description?: string }).description).toEqual(expect.any(String));

    expect(parameters.add_task!.required).toEqual(["title"]);
    expect(Object.keys(parameters.add_task!.properties).sort()).toEqual(["description", "due", "labels", "priority", "recurrence", "title"]);
    expect(parameters.add_task!.properties.title).toMatchObject({ type: "string", minLength: 1, maxLength: 200 });
    expect(parameters.add_task!.properties.description).toMatchObject({ type: "string", maxLength: 1000 });
    expect(parameters.list_tasks!.properties.status).toMatchObject({ enum: ["all", "pending", "completed"], default: "all" });
    expect(parameters.list_tasks!.required ?? []).toEqual([]);
    for (const name of ["complete_task", "delete_task", "update_task"]) {
      expect(parameters[name]!.required).toEqual(["task_id"]);
      expect(parameters[name]!.properties.task_id).toMatchObject({ type: "string" });
    }
    expect(Object.keys(parameters.update_task!.properties).sort()).toEqual([
      "description",
      "due",
      "labels",
      "priority",
      "recurrence",
      "task_id",
      "title",
    ]);
    expect(Object.keys(parameters.undo_turn!.properties)).toEqual(["turn_id"]);
    expect(parameters.undo_turn!.required ?? []).toEqual([]);

    // No user parameter, at any depth, in any tool.
    const keys: string[] = [];
    const walk = (value: unknown): void => {
      if (Array.isArray(value)) value.forEach(walk);
      else if (value !== null && typeof value === "object") {
        for (const [key, inner] of Object.entries(value)) {
          keys.push(key);
          walk(inner);
        }
      }
    };
    walk(tools);
    expect(keys.filter((key) => /^user_?id$/i.test(key))).toEqual([]);
    expect(JSON.stringify(tools)).not.toMatch(/user_?id/i);
  });

  it("should never let the model set the user through an injected user_id argument", async () => {
    const user = await newUser(server);
    const victim = await newUser(server, "victim");
    const victimTask = await addTask(victim, "Victim's task");
    const inject: WireCall = { id: "call_inject_add", name: "add_task", args: { title: "Mine", user_id: victim.id, userId: victim.id } };
    const peek: WireCall = { id: "call_inject_list", name: "list_tasks", args: { status: "all", user_id: victim.id, userId: victim.id } };
    fake.enqueue(toolCallReply([inject], "Add it for them."), toolCallReply([peek], "Look at their tasks."), textReply("Done."));

    const { response, payload, requests } = await send(user, "add Mine for the victim", { expectedCalls: 3 });
    expect(response.errors).toBeUndefined();

    const added = callById(payload, "call_inject_add");
    expect(added.arguments).toEqual({ title: "Mine", user_id: victim.id, userId: victim.id });
    const mine = await rowsOf(user.id);
    if (added.error === null) {
      // Ignored: the task is the caller's.
      expect(mine.map((r) => [r.title, r.userId])).toEqual([["Mine", user.id]]);
      expect(added.result).toEqual(toolTask(mine[0]!));
    } else {
      // Rejected: nothing was written.
      expect(added.error).toMatch(/^Invalid arguments for add_task/);
      expect(added.result).toBeNull();
      expect(mine).toEqual([]);
    }
    expect(await server.db.task.count({ where: { userId: victim.id, title: "Mine" } })).toBe(0);
    expect((await rowsOf(victim.id)).map((r) => r.id)).toEqual([parseId(victimTask.id, "id", "Task")]);

    // Listing with an injected user never shows the victim's task.
    const listed = callById(payload, "call_inject_list");
    if (listed.error === null) {
      expect(listed.result).toEqual({ tasks: mine.map(toolTask), count: mine.length, truncated: false });
    } else {
      expect(listed.error).toMatch(/^Invalid arguments for list_tasks/);
    }
    for (const request of requests) expect(JSON.stringify(request.body.messages)).not.toContain("Victim's task");

    const turn: Expected[] = [
      { role: "user", content: "add Mine for the victim" },
      step("Add it for them.", [inject]),
      { role: "tool", callId: "call_inject_add", document: added.error === null ? added.result! : { error: added.error } },
      step("Look at their tasks.", [peek]),
      { role: "tool", callId: "call_inject_list", document: listed.error === null ? listed.result! : { error: listed.error } },
      { role: "reply", content: "Done." },
    ];
    await expectTurn(user, payload, turn);
    expectWire(requests[2]!, turn.slice(0, 5));
  });
});
