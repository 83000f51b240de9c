import { setTimeout as sleep } from "node:timers/promises";
import { describe, expect, it } from "vitest";
import { newUser, type GraphQLResponse, type TestServer, type TestUser } from "./server.js";

/**
 * The task and conversation CRUD scenarios, through the real HTTP endpoint, as
 * a `describe(label)` block. `getServer` is read when a case runs, so it may be
 * assigned in `beforeAll`. Every case uses users of its own, so the cases share
 * one database without cleaning up.
 */
export function describeCrud(label: string, getServer: () => TestServer): void {
  describe(label, () => registerCrud(getServer));
}

function registerCrud(getServer: () => TestServer): void {
  const user = (label: string): Promise<TestUser> => newUser(getServer(), label);

  it("should add a task with a trimmed title and description and read it back by id", async () => {
    const alice = await user("crud-add");
    const added = data(
      await alice.gql<{ addTask: Task }>(`mutation($input: AddTaskInput!) { addTask(input: $input) { ${TASK} } }`, {
        input: { title: "  Buy milk  ", description: "  2 litres, semi-skimmed " },
      }),
    ).addTask;
    expect(added).toMatchObject({ title: "Buy milk", description: "2 litres, semi-skimmed", completed: false });
    expect(added.id).toEqual(expect.any(String));
    expect(added.createdAt).toMatch(ISO_INSTANT);
    expect(added.updatedAt).toBe(added.createdAt);

    const read = data(await alice.gql<{ task: Task }>(`query($id: ID!) { task(id: $id) { ${TASK} } }`, { id: added.id }));
    expect(read.task).toEqual(added);
  });

  it("should store a missing or empty description as null", async () => {
    const alice = await user("crud-null-description");
    const omitted = await addTask(alice, { title: "No description" });
    expect(omitted).toMatchObject({ title: "No description", description: null, completed: false });
    const empty = await addTask(alice, { title: "Empty description", description: "   " });
    expect(empty).toMatchObject({ title: "Empty description", description: null, completed: false });
  });

  it("should list tasks newest first and filter them by status", async () => {
    const alice = await user("crud-list");
    const first = await addTask(alice, { title: "First" });
    const second = await addTask(alice, { title: "Second" });
    const third = await addTask(alice, { title: "Third" });
    data(await alice.gql(`mutation($id: ID!) { completeTask(id: $id) { id } }`, { id: second.id }));

    const list = async (status?: string) => {
      const response = await alice.gql<{ tasks: { edges: { node: Pick<Task, "id" | "title" | "completed"> }[] } }>(
        status === undefined
          ? `{ tasks { edges { node { id title completed } } } }`
          : `query($status: TaskStatusFilter) { tasks(status: $status) { edges { node { id title completed } } } }`,
        status === undefined ? undefined : { status },
      );
      return data(response).tasks.edges.map((edge) => edge.node);
    };
    const all = [
      { id: third.id, title: "Third", completed: false },
      { id: second.id, title: "Second", completed: true },
      { id: first.id, title: "First", completed: false },
    ];
    expect(await list()).toEqual(all);
    expect(await list("ALL")).toEqual(all);
    expect(await list("PENDING")).toEqual([
      { id: third.id, title: "Third", completed: false },
      { id: first.id, title: "First", completed: false },
    ]);
    expect(await list("COMPLETED")).toEqual([{ id: second.id, title: "Second", completed: true }]);
  });

  it("should update a task's title, description and completed flag, leaving omitted fields alone", async () => {
    const alice = await user("crud-update");
    const task = await addTask(alice, { title: "Draft", description: "first notes" });
    const update = async (input: Record<string, unknown>) =>
      data(
        await alice.gql<{ updateTask: Task }>(`mutation($input: UpdateTaskInput!) { updateTask(input: $input) { ${TASK} } }`, {
          input: { id: task.id, ...input },
        }),
      ).updateTask;

    await sleep(5);
    const retitled = await update({ title: "  Final  " });
    expect(retitled).toMatchObject({ id: task.id, title: "Final", description: "first notes", completed: false });
    expect(retitled.createdAt).toBe(task.createdAt);
    expect(Date.parse(retitled.updatedAt)).toBeGreaterThan(Date.parse(task.updatedAt));

    expect(await update({ description: "second notes" })).toMatchObject({ title: "Final", description: "second notes", completed: false });
    expect(await update({ description: null })).toMatchObject({ title: "Final", description: null, completed: false });
    expect(await update({ description: "third notes" })).toMatchObject({ description: "third notes" });
    expect(await update({ description: "" })).toMatchObject({ title: "Final", description: null, completed: false });
    expect(await update({ completed: true })).toMatchObject({ title: "Final", description: null, completed: true });
    expect(await update({ completed: false })).toMatchObject({ title: "Final", description: null, completed: false });
    expect(await update({ title: "Both", description: "together", completed: true })).toMatchObject({
      id: task.id,
      title: "Both",
      description: "together",
      completed: true,
    });

    const read = data(await alice.gql<{ task: Task }>(`query($id: ID!) { task(id: $id) { ${TASK} } }`, { id: task.id }));
    expect(read.task).toMatchObject({ id: task.id, title: "Both", description: "together", completed: true });
  });

  it("should complete a task, and completing it again should change nothing", async () => {
    const alice = await user("crud-complete");
    const task = await addTask(alice, { title: "Water plants", description: "balcony" });
    const complete = async () =>
      data(await alice.gql<{ completeTask: Task }>(`mutation($id: ID!) { completeTask(id: $id) { ${TASK} } }`, { id: task.id })).completeTask;
    const once = await complete();
    expect(once).toMatchObject({ id: task.id, title: "Water plants", description: "balcony", completed: true });
    const twice = await complete();
    expect(twice).toEqual(once);
  });

  it("should delete a task, return it as it was, and then answer NOT_FOUND for it", async () => {
    const alice = await user("crud-delete");
    const kept = await addTask(alice, { title: "Keep me" });
    const doomed = await addTask(alice, { title: "Delete me", description: "soon gone" });
    data(await alice.gql(`mutation($id: ID!) { completeTask(id: $id) { id } }`, { id: doomed.id }));

    const deleted = data(
      await alice.gql<{ deleteTask: Task }>(`mutation($id: ID!) { deleteTask(id: $id) { ${TASK} } }`, { id: doomed.id }),
    ).deleteTask;
    expect(deleted).toMatchObject({ id: doomed.id, title: "Delete me", description: "soon gone", completed: true });
    expect(deleted.createdAt).toBe(doomed.createdAt);

    const read = await alice.gql(`query($id: ID!) { task(id: $id) { id } }`, { id: doomed.id });
    expectError(read, "NOT_FOUND", "Task not found", ["task"]);
    expect(read.data).toEqual({ task: null });

    const again = await alice.gql(`mutation($id: ID!) { deleteTask(id: $id) { id } }`, { id: doomed.id });
    expectError(again, "NOT_FOUND", "Task not found", ["deleteTask"]);
    expect(again.data).toBeNull();

    const update = await alice.gql(`mutation($id: ID!) { updateTask(input: { id: $id, title: "Back" }) { id } }`, { id: doomed.id });
    expectError(update, "NOT_FOUND", "Task not found", ["updateTask"]);
    const complete = await alice.gql(`mutation($id: ID!) { completeTask(id: $id) { id } }`, { id: doomed.id });
    expectError(complete, "NOT_FOUND", "Task not found", ["completeTask"]);

    const listed = data(await alice.gql<{ tasks: { edges: { node: { id: string } }[] } }>(`{ tasks { edges { node { id } } } }`));
    expect(listed.tasks.edges).toEqual([{ node: { id: kept.id } }]);
  });

  it("should answer NOT_FOUND for another user's task and leave it untouched", async () => {
    const alice = await user("crud-owner");
    const mallory = await user("crud-other");
    const task = await addTask(alice, { title: "Private" });

    expectError(await mallory.gql(`query($id: ID!) { task(id: $id) { id } }`, { id: task.id }), "NOT_FOUND", "Task not found", ["task"]);
    expectError(
      await mallory.gql(`mutation($id: ID!) { updateTask(input: { id: $id, title: "Mine" }) { id } }`, { id: task.id }),
      "NOT_FOUND",
      "Task not found",
      ["updateTask"],
    );
    expectError(await mallory.gql(`mutation($id: ID!) { completeTask(id: $id) { id } }`, { id: task.id }), "NOT_FOUND", "Task not found", [
      "completeTask",
    ]);
    expectError(await mallory.gql(`mutation($id: ID!) { deleteTask(id: $id) { id } }`, { id: task.id }), "NOT_FOUND", "Task not found", [
      "deleteTask",
    ]);
    expect(data(await mallory.gql<{ tasks: { edges: unknown[] } }>(`{ tasks { edges { node { id } } } }`)).tasks.edges).toEqual([]);

    const read = data(await alice.gql<{ task: Task }>(`query($id: ID!) { task(id: $id) { ${TASK} } }`, { id: task.id }));
    expect(read.task).toEqual(task);
  });

  it("should create conversations with and without a title and read them back by id", async () => {
    const alice = await user("crud-conversation");
    const titled = await createConversation(alice, { title: "  Weekend trip  " });
    expect(titled).toMatchObject({ title: "Weekend trip", messages: { edges: [] } });
    expect(titled.id).toEqual(expect.any(String));
    expect(titled.createdAt).toMatch(ISO_INSTANT);
    expect(titled.updatedAt).toBe(titled.createdAt);

    const untitled = await createConversation(alice);
    expect(untitled).toMatchObject({ title: null, messages: { edges: [] } });
    expect(untitled.id).not.toBe(titled.id);

    for (const conversation of [titled, untitled]) {
      const read = data(
        await alice.gql<{ conversation: Conversation }>(`query($id: ID!) { conversation(id: $id) { ${CONVERSATION} } }`, {
          id: conversation.id,
        }),
      );
      expect(read.conversation).toEqual(conversation);
    }
  });

  it("should list only the viewer's conversations, most recently updated first", async () => {
    const alice = await user("crud-conversations");
    const bob = await user("crud-conversations-other");
    const first = await createConversation(alice, { title: "First" });
    const second = await createConversation(alice, { title: "Second" });
    await createConversation(bob, { title: "Bob's" });

    const listed = data(
      await alice.gql<{ conversations: { edges: { node: { id: string; title: string | null } }[] } }>(
        `{ conversations { edges { node { id title } } } }`,
      ),
    );
    expect(listed.conversations.edges).toEqual([{ node: { id: second.id, title: "Second" } }, { node: { id: first.id, title: "First" } }]);
  });

  it("should delete a conversation, return its ID, and then answer NOT_FOUND for it", async () => {
    const alice = await user("crud-conversation-delete");
    const kept = await createConversation(alice, { title: "Keep" });
    const doomed = await createConversation(alice, { title: "Delete" });

    const deleted = data(await alice.gql<{ deleteConversation: string }>(`mutation($id: ID!) { deleteConversation(id: $id) }`, { id: doomed.id }));
    expect(deleted.deleteConversation).toBe(doomed.id);

    const read = await alice.gql(`query($id: ID!) { conversation(id: $id) { id } }`, { id: doomed.id });
    expectError(read, "NOT_FOUND", "Conversation not found", ["conversation"]);
    expect(read.data).toEqual({ conversation: null });

    const again = await alice.gql(`mutation($id: ID!) { deleteConversation(id: $id) }`, { id: doomed.id });
    expectError(again, "NOT_FOUND", "Conversation not found", ["deleteConversation"]);
    expect(again.data).toBeNull();

    const listed = data(await alice.gql<{ conversations: { edges: { node: { id: string } }[] } }>(`{ conversations { edges { node { id } } } }`));
    expect(listed.conversations.edges).toEqual([{ node: { id: kept.id } }]);
  });

  it("should answer NOT_FOUND for another user's conversation and leave it in place", async () => {
    const alice = await user("crud-conversation-owner");
    const mallory = await user("crud-conversation-other");
    const conversation = await createConversation(alice, { title: "Private" });

    expectError(
      await mallory.gql(`query($id: ID!) { conversation(id: $id) { id } }`, { id: conversation.id }),
      "NOT_FOUND",
      "Conversation not found",
      ["conversation"],
    );
    expectError(
      await mallory.gql(`mutation($id: ID!) { deleteConversation(id: $id) }`, { id: conversation.id }),
      "NOT_FOUND",
      "Conversation not found",
      ["deleteConversation"],
    );
    const read = data(
      await alice.gql<{ conversation: Conversation }>(`query($id: ID!) { conversation(id: $id) { ${CONVERSATION} } }`, {
        id: conversation.id,
      }),
    );
    expect(read.conversation).toEqual(conversation);
  });
}

interface Task {
  id: string;
  title: string;
  description: string | null;
  completed: boolean;
  createdAt: string;
  updatedAt: string;
}

interface Conversation {
  id: string;
  title: string | null;
  createdAt: string;
  updatedAt: string;
  messages: { edges: unknown[] };
}

const TASK = "id title description completed createdAt updatedAt";
const CONVERSATION = "id title createdAt updatedAt messages { edges { node { id } } }";
const ISO_INSTANT = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;

/** The data of a response that must have succeeded. */
function data<T>(response: GraphQLResponse<T>): T {
  expect(response.errors).toBeUndefined();
  expect(response.status).toBe(200);
  if (response.data === undefined || response.data === null) throw new Error("response has no data");
  return response.data;
}

function expectError(response: GraphQLResponse, code: string, message: string, path: string[]): void {
  expect(response.status).toBe(200);
  expect(response.errors).toEqual([expect.objectContaining({ message, path, extensions: expect.objectContaining({ code }) })]);
}

async function addTask(user: TestUser, input: { title: string; description?: string }): Promise<Task> {
  const task = data(await user.gql<{ addTask: Task }>(`mutation($input: AddTaskInput!) { addTask(input: $input) { ${TASK} } }`, { input })).addTask;
  // Ordering is by a millisecond timestamp: keep each row's instant its own.
  await sleep(3);
  return task;
}

async function createConversation(user: TestUser, input?: { title: string }): Promise<Conversation> {
  const conversation = data(
    await user.gql<{ createConversation: Conversation }>(
      input === undefined
        ? `mutation { createConversation { ${CONVERSATION} } }`
        : `mutation($input: CreateConversationInput) { createConversation(input: $input) { ${CONVERSATION} } }`,
      input === undefined ? undefined : { input },
    ),
  ).createConversation;
  await sleep(3);
  return conversation;
}
