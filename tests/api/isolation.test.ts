import { randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { appendMessages } from "../../src/domain/messages.js";
import { toGlobalId } from "../../src/ids.js";
import { newUser, startTestServer, type GraphQLResponse, type TestServer, type TestUser } from "../helpers/server.js";

function rawId(globalId: string): string {
  const decoded = Buffer.from(globalId, "base64").toString("utf8");
  return decoded.slice(decoded.indexOf(":") + 1);
}

/** The one error a request for someone else's (or no one's) resource gets. */
function expectNotFound(response: GraphQLResponse, message: string): void {
  expect(response.errors).toHaveLength(1);
  expect(response.errors?.[0]?.extensions?.code).toBe("NOT_FOUND");
  expect(response.errors?.[0]?.message).toBe(message);
  expect(JSON.stringify(response)).not.toMatch(/FORBIDDEN/i);
}

const TASK = `query($id: ID!) { task(id: $id) { id title } }`;
const CONVERSATION = `query($id: ID!) { conversation(id: $id) { id title messages { edges { node { id content } } } } }`;
const NODE = `query($id: ID!) { node(id: $id) { id ... on Task { taskTitle: title } ... on Conversation { conversationTitle: title } ... on Message { content } } }`;
const UPDATE_TASK = `mutation($input: UpdateTaskInput!) { updateTask(input: $input) { id title } }`;
const COMPLETE_TASK = `mutation($id: ID!) { completeTask(id: $id) { id completed } }`;
const DELETE_TASK = `mutation($id: ID!) { deleteTask(id: $id) { id } }`;
const DELETE_CONVERSATION = `mutation($id: ID!) { deleteConversation(id: $id) }`;
const TASKS = `query($status: TaskStatusFilter) { tasks(first: 100, status: $status) { edges { node { id title } } } }`;
const CONVERSATIONS = `{ conversations(first: 20) { edges { node { id title messages(first: 50) { edges { node { id } } } } } } }`;

describe("isolation between users", () => {
  let server: TestServer;
  let alice: TestUser;
  let bob: TestUser;
  /** Alice's global IDs. */
  const a = { pendingTask: "", completedTask: "", conversation: "", messages: [] as string[] };
  /** Bob's own, so his lists are not trivially empty. */
  const b = { task: "", completedTask: "", conversation: "" };

  async function ok<T>(user: TestUser, query: string, variables?: Record<string, unknown>): Promise<T> {
    const response = await user.gql<T>(query, variables);
    expect(response.errors).toBeUndefined();
    if (response.data === undefined || response.data === null) throw new Error("no data");
    return response.data;
  }

  async function seed(user: TestUser, label: string) {
    const add = `mutation($title: String!) { addTask(input: { title: $title }) { id } }`;
    const pending = await ok<{ addTask: { id: string } }>(user, add, { title: `${label} pending` });
    const done = await ok<{ addTask: { id: string } }>(user, add, { title: `${label} done` });
    await ok(user, COMPLETE_TASK, { id: done.addTask.id });
    const conversation = await ok<{ createConversation: { id: string } }>(
      user,
      `mutation { createConversation(input: { title: "${label} chat" }) { id } }`,
    );
    const conversationId = conversation.createConversation.id;
    const messages = await server.db.$transaction(async (tx) =>
      appendMessages(tx, user.id, rawId(conversationId), [
        { role: "user", content: `${label} asks` },
        { role: "assistant", content: `${label} is answered` },
      ]),
    );
    return {
      pendingTask: pending.addTask.id,
      completedTask: done.addTask.id,
      conversation: conversationId,
      messages: messages.map((message) => toGlobalId("Message", message.id)),
    };
  }

  /** Alice's rows as the database holds them. */
  async function aliceRows() {
    const where = { userId: alice.id };
    const orderBy = { id: "asc" } as const;
    return {
      tasks: await server.db.task.findMany({ where, orderBy }),
      conversations: await server.db.conversation.findMany({ where, orderBy }),
      messages: await server.db.message.findMany({ where, orderBy }),
    };
  }

  beforeAll(async () => {
    server = await startTestServer();
    alice = await newUser(server, "alice");
    bob = await newUser(server, "bob");
    Object.assign(a, await seed(alice, "Alice"));
    const bobs = await seed(bob, "Bob");
    b.task = bobs.pendingTask;
    b.completedTask = bobs.completedTask;
    b.conversation = bobs.conversation;
  });
  afterAll(async () => {
    await server.close();
  });

  it("should let the owner read every resource (the control for the cases below)", async () => {
    for (const id of [a.pendingTask, a.completedTask]) await ok(alice, TASK, { id });
    const conversation = await ok<{ conversation: { messages: { edges: unknown[] } } }>(alice, CONVERSATION, {
      id: a.conversation,
    });
    expect(conversation.conversation.messages.edges).toHaveLength(2);
    for (const id of [a.pendingTask, a.conversation, ...a.messages]) {
      const node = await ok<{ node: { id: string } }>(alice, NODE, { id });
      expect(node.node.id).toBe(id);
    }
    const rows = await aliceRows();
    expect(rows.tasks).toHaveLength(2);
    expect(rows.conversations).toHaveLength(1);
    expect(rows.messages).toHaveLength(2);
  });

  describe("another user's resources", () => {
    it("should answer task(id) with NOT_FOUND", async () => {
      for (const id of [a.pendingTask, a.completedTask]) {
        const response = await bob.gql(TASK, { id });
        expectNotFound(response, "Task not found");
        expect(response.data?.task ?? null).toBeNull();
      }
    });

    it("should answer conversation(id) with NOT_FOUND", async () => {
      const response = await bob.gql(CONVERSATION, { id: a.conversation });
      expectNotFound(response, "Conversation not found");
      expect(response.data?.conversation ?? null).toBeNull();
    });

    it("should answer node(id) with NOT_FOUND for a Task, a Conversation and a Message", async () => {
      const cases: [string, string][] = [
        [a.pendingTask, "Task not found"],
        [a.completedTask, "Task not found"],
        [a.conversation, "Conversation not found"],
        ...a.messages.map((id): [string, string] => [id, "Message not found"]),
      ];
      for (const [id, message] of cases) {
        const response = await bob.gql(NODE, { id });
        expectNotFound(response, message);
        expect(response.data?.node ?? null).toBeNull();
      }
    });

    it("should answer updateTask with NOT_FOUND and change nothing", async () => {
      const before = await aliceRows();
      for (const id of [a.pendingTask, a.completedTask]) {
        const response = await bob.gql(UPDATE_TASK, { input: { id, title: "Hijacked", description: "x", completed: false } });
        expectNotFound(response, "Task not found");
      }
      expect(await aliceRows()).toEqual(before);
    });

    it("should answer completeTask with NOT_FOUND and change nothing", async () => {
      const before = await aliceRows();
      const response = await bob.gql(COMPLETE_TASK, { id: a.pendingTask });
      expectNotFound(response, "Task not found");
      const after = await aliceRows();
      expect(after).toEqual(before);
      expect(after.tasks.find((task) => task.id === rawId(a.pendingTask))?.completed).toBe(false);
    });

    it("should answer deleteTask with NOT_FOUND and delete nothing", async () => {
      const before = await aliceRows();
      for (const id of [a.pendingTask, a.completedTask]) {
        const response = await bob.gql(DELETE_TASK, { id });
        expectNotFound(response, "Task not found");
      }
      expect(await aliceRows()).toEqual(before);
    });

    it("should answer deleteConversation with NOT_FOUND and delete neither it nor its messages", async () => {
      const before = await aliceRows();
      const response = await bob.gql(DELETE_CONVERSATION, { id: a.conversation });
      expectNotFound(response, "Conversation not found");
      const after = await aliceRows();
      expect(after).toEqual(before);
      expect(after.messages).toHaveLength(2);
    });

    it("should never list another user's tasks, whatever the status filter", async () => {
      const alices = new Set([a.pendingTask, a.completedTask]);
      const expected = { ALL: [b.completedTask, b.task], PENDING: [b.task], COMPLETED: [b.completedTask] };
      for (const status of ["ALL", "PENDING", "COMPLETED"] as const) {
        const data = await ok<{ tasks: { edges: { node: { id: string } }[] } }>(bob, TASKS, { status });
        const ids = data.tasks.edges.map((edge) => edge.node.id);
        expect(ids.filter((id) => alices.has(id))).toEqual([]);
        expect(ids.sort()).toEqual([...expected[status]].sort());
      }
      const defaulted = await ok<{ tasks: { edges: { node: { id: string } }[] } }>(bob, TASKS);
      expect(defaulted.tasks.edges.map((edge) => edge.node.id).sort()).toEqual([b.task, b.completedTask].sort());
    });

    it("should never list another user's conversations or messages", async () => {
      const data = await ok<{
        conversations: { edges: { node: { id: string; messages: { edges: { node: { id: string } }[] } } }[] };
      }>(bob, CONVERSATIONS);
      expect(data.conversations.edges.map((edge) => edge.node.id)).toEqual([b.conversation]);
      const messageIds = data.conversations.edges.flatMap((edge) => edge.node.messages.edges.map((m) => m.node.id));
      expect(messageIds).toHaveLength(2);
      for (const id of a.messages) expect(messageIds).not.toContain(id);
    });
  });

  describe("existence is not revealed", () => {
    const ghost = () => ({
      task: toGlobalId("Task", randomUUID()),
      conversation: toGlobalId("Conversation", randomUUID()),
      message: toGlobalId("Message", randomUUID()),
    });

    /** The parts of an error a client can see, minus where in the query it happened. */
    function visible(response: GraphQLResponse) {
      expect(response.errors).toHaveLength(1);
      const [error] = response.errors ?? [];
      return { message: error?.message, extensions: error?.extensions, data: response.data };
    }

    it("should give a nonexistent ID the same NOT_FOUND as another user's, at every entry point", async () => {
      const none = ghost();
      const cases: [string, (id: string) => Record<string, unknown>, string, string][] = [
        [TASK, (id) => ({ id }), a.pendingTask, none.task],
        [NODE, (id) => ({ id }), a.pendingTask, none.task],
        [NODE, (id) => ({ id }), a.conversation, none.conversation],
        [NODE, (id) => ({ id }), a.messages[0] ?? "", none.message],
        [CONVERSATION, (id) => ({ id }), a.conversation, none.conversation],
        [UPDATE_TASK, (id) => ({ input: { id, title: "x" } }), a.pendingTask, none.task],
        [COMPLETE_TASK, (id) => ({ id }), a.pendingTask, none.task],
        [DELETE_TASK, (id) => ({ id }), a.pendingTask, none.task],
        [DELETE_CONVERSATION, (id) => ({ id }), a.conversation, none.conversation],
      ];
      const before = await aliceRows();
      for (const [query, variables, foreignId, missingId] of cases) {
        const foreign = await bob.gql(query, variables(foreignId));
        const missing = await bob.gql(query, variables(missingId));
        expect(foreign.errors?.[0]?.extensions?.code).toBe("NOT_FOUND");
        expect(visible(missing)).toEqual(visible(foreign));
        expect(missing.status).toBe(foreign.status);
      }
      expect(await aliceRows()).toEqual(before);
    });
  });
});
