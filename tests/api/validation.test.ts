import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { toGlobalId } from "../../src/lib/ids.js";
import { newUser, startTestServer, type GraphQLResponse, type TestServer, type TestUser } from "../helpers/server.js";

const ADD_TASK = `mutation Add($input: AddTaskInput!) { addTask(input: $input) { id title description } }`;
const UPDATE_TASK = `mutation Update($input: UpdateTaskInput!) { updateTask(input: $input) { id title description completed } }`;
const CREATE_CONVERSATION = `mutation Create($input: CreateConversationInput) { createConversation(input: $input) { id title } }`;

/** No stack, SQL, Prisma or Postgres text anywhere in a response. */
function expectNoLeak(response: GraphQLResponse): void {
  const text = JSON.stringify(response);
  expect(text).not.toMatch(/prisma/i);
  expect(text).not.toMatch(/\bSELECT\b/);
  expect(text).not.toMatch(/\\n\s+at\s/);
  expect(text).not.toMatch(/\bat [^"]*\S+:\d+:\d+/);
  expect(text).not.toMatch(/invalid input syntax/i);
  expect(text).not.toMatch(/"stack"/);
}

/**
 * Every error is BAD_USER_INPUT; the first names `field` in extensions.field
 * (when given) and its message mentions `mentions`.
 */
function expectBadInput(response: GraphQLResponse, expected: { field?: string; mentions: string | RegExp }): void {
  expectNoLeak(response);
  expect(response.errors?.length ?? 0).toBeGreaterThan(0);
  for (const error of response.errors ?? []) expect(error.extensions?.code).toBe("BAD_USER_INPUT");
  const [first] = response.errors ?? [];
  if (expected.field !== undefined) expect(first?.extensions?.field).toBe(expected.field);
  if (typeof expected.mentions === "string") expect(first?.message).toContain(expected.mentions);
  else expect(first?.message).toMatch(expected.mentions);
}

/** base64 of arbitrary text: an ID that decodes but is not ours. */
function base64(text: string): string {
  return Buffer.from(text, "utf8").toString("base64");
}

function rawId(globalId: string): string {
  const decoded = Buffer.from(globalId, "base64").toString("utf8");
  return decoded.slice(decoded.indexOf(":") + 1);
}

describe("input validation", () => {
  let server: TestServer;

  beforeAll(async () => {
    server = await startTestServer();
  });
  afterAll(async () => {
    await server.close();
  });

  const taskCount = (user: TestUser) => server.db.task.count({ where: { userId: user.id } });
  const conversationCount = (user: TestUser) => server.db.conversation.count({ where: { userId: user.id } });

  async function addTask(user: TestUser, title = "A task"): Promise<string> {
    const response = await user.gql<{ addTask: { id: string } }>(ADD_TASK, { input: { title } });
    expect(response.errors).toBeUndefined();
    const id = response.data?.addTask.id;
    if (id === undefined) throw new Error("addTask returned no id");
    return id;
  }

  async function createConversation(user: TestUser): Promise<string> {
    const response = await user.gql<{ createConversation: { id: string } }>(CREATE_CONVERSATION, { input: { title: "Chat" } });
    expect(response.errors).toBeUndefined();
    const id = response.data?.createConversation.id;
    if (id === undefined) throw new Error("createConversation returned no id");
    return id;
  }

  describe("task title and description", () => {
    it("should reject an empty title and persist nothing", async () => {
      const user = await newUser(server);
      const response = await user.gql(ADD_TASK, { input: { title: "" } });
      expectBadInput(response, { field: "input.title", mentions: "input.title" });
      expect(response.data ?? null).toBeNull();
      expect(await taskCount(user)).toBe(0);
    });

    it("should reject a whitespace-only title and persist nothing", async () => {
      const user = await newUser(server);
      const response = await user.gql(ADD_TASK, { input: { title: " \t\n  " } });
      expectBadInput(response, { field: "input.title", mentions: "input.title" });
      expect(await taskCount(user)).toBe(0);
    });

    it("should accept a 200-character title and reject a 201-character one", async () => {
      const user = await newUser(server);
      const ok = await user.gql(ADD_TASK, { input: { title: "a".repeat(200) } });
      expect(ok.errors).toBeUndefined();
      expect(ok.data?.addTask.title).toBe("a".repeat(200));
      expect(await taskCount(user)).toBe(1);

      const tooLong = await user.gql(ADD_TASK, { input: { title: "a".repeat(201) } });
      expectBadInput(tooLong, { field: "input.title", mentions: "input.title" });
      expect(tooLong.errors?.[0]?.message).toContain("200");
      expect(await taskCount(user)).toBe(1);
    });

    it("should trim surrounding whitespace before counting the title", async () => {
      const user = await newUser(server);
      const response = await user.gql(ADD_TASK, { input: { title: `   ${"b".repeat(200)}   ` } });
      expect(response.errors).toBeUndefined();
      expect(response.data?.addTask.title).toBe("b".repeat(200));
    });

    it("should accept a 1000-character description and reject a 1001-character one", async () => {
      const user = await newUser(server);
      const ok = await user.gql(ADD_TASK, { input: { title: "t", description: "d".repeat(1000) } });
      expect(ok.errors).toBeUndefined();
      expect(ok.data?.addTask.description).toBe("d".repeat(1000));
      expect(await taskCount(user)).toBe(1);

      const tooLong = await user.gql(ADD_TASK, { input: { title: "t", description: "d".repeat(1001) } });
      expectBadInput(tooLong, { field: "input.description", mentions: "input.description" });
      expect(await taskCount(user)).toBe(1);
    });

    it("should count the title in characters, not UTF-16 units", async () => {
      const user = await newUser(server);
      const emoji = "😀".repeat(200);
      expect(emoji.length).toBe(400);
      const ok = await user.gql(ADD_TASK, { input: { title: emoji } });
      expect(ok.errors).toBeUndefined();
      expect(ok.data?.addTask.title).toBe(emoji);
      const stored = await server.db.task.findMany({ where: { userId: user.id } });
      expect(stored.map((task) => task.title)).toEqual([emoji]);

      const tooLong = await user.gql(ADD_TASK, { input: { title: "😀".repeat(201) } });
      expectBadInput(tooLong, { field: "input.title", mentions: "input.title" });
      expect(tooLong.errors?.[0]?.message).toContain("201");
      expect(await taskCount(user)).toBe(1);
    });

    it("should reject a NUL character in the title as bad input, not an internal error", async () => {
      const user = await newUser(server);
      const response = await user.gql(ADD_TASK, { input: { title: "a\u0000b" } });
      expectBadInput(response, { field: "input.title", mentions: "input.title" });
      expect(await taskCount(user)).toBe(0);
    });
  });

  describe("updateTask", () => {
    it("should reject title: null and leave the task unchanged", async () => {
      const user = await newUser(server);
      const id = await addTask(user, "Keep me");
      const before = await server.db.task.findUniqueOrThrow({ where: { id: rawId(id) } });
      const response = await user.gql(UPDATE_TASK, { input: { id, title: null } });
      expectBadInput(response, { field: "input.title", mentions: "input.title" });
      expect(response.data ?? null).toBeNull();
      expect(await server.db.task.findUniqueOrThrow({ where: { id: rawId(id) } })).toEqual(before);
    });

    it("should reject an empty, a 201-character title and a 1001-character description and leave the task unchanged", async () => {
      const user = await newUser(server);
      const id = await addTask(user, "Keep me");
      const before = await server.db.task.findUniqueOrThrow({ where: { id: rawId(id) } });
      for (const [input, field] of [
        [{ id, title: "   " }, "input.title"],
        [{ id, title: "x".repeat(201) }, "input.title"],
        [{ id, description: "y".repeat(1001) }, "input.description"],
        [{ id, completed: null }, "input.completed"],
      ] as const) {
        const response = await user.gql(UPDATE_TASK, { input });
        expectBadInput(response, { field, mentions: field });
      }
      expect(await server.db.task.findUniqueOrThrow({ where: { id: rawId(id) } })).toEqual(before);
    });

    it("should accept the 200-character and 1000-character edges on update", async () => {
      const user = await newUser(server);
      const id = await addTask(user);
      const response = await user.gql(UPDATE_TASK, { input: { id, title: "x".repeat(200), description: "y".repeat(1000) } });
      expect(response.errors).toBeUndefined();
      expect(response.data?.updateTask).toMatchObject({ title: "x".repeat(200), description: "y".repeat(1000) });
    });
  });

  describe("IDs", () => {
    const MALFORMED = ["nope", base64("Task:not-a-uuid")];

    /** The operations that take a Task ID, called with `id`: [query, variables, the field a rejection names]. */
    function taskEntryPoints(id: string): [string, Record<string, unknown>, string][] {
      return [
        [`query($id: ID!) { task(id: $id) { id } }`, { id }, "id"],
        [`mutation($id: ID!) { completeTask(id: $id) { id } }`, { id }, "id"],
        [`mutation($id: ID!) { deleteTask(id: $id) { id } }`, { id }, "id"],
        [UPDATE_TASK, { input: { id, title: "Changed" } }, "input.id"],
      ];
    }

    /** conversation(id) and deleteConversation(id), the operations that take a Conversation ID, called with `id`. */
    async function callConversationEntryPoints(user: TestUser, id: string): Promise<GraphQLResponse[]> {
      return [
        await user.gql(`query($id: ID!) { conversation(id: $id) { id } }`, { id }),
        await user.gql(`mutation($id: ID!) { deleteConversation(id: $id) }`, { id }),
      ];
    }

    it("should reject a malformed ID in every task entry point and change nothing", async () => {
      const user = await newUser(server);
      const id = await addTask(user, "Untouched");
      const before = await server.db.task.findMany({ where: { userId: user.id } });
      for (const bad of MALFORMED) {
        const cases = [...taskEntryPoints(bad), [`query($id: ID!) { node(id: $id) { id } }`, { id: bad }, "id"] as const];
        for (const [query, variables, field] of cases) {
          const response = await user.gql(query, variables);
          expectBadInput(response, { field, mentions: field });
        }
      }
      expect(await server.db.task.findMany({ where: { userId: user.id } })).toEqual(before);
      expect(before.map((task) => task.id)).toEqual([rawId(id)]);
    });

    it("should reject a malformed ID in every conversation entry point", async () => {
      const user = await newUser(server);
      await createConversation(user);
      for (const bad of ["nope", base64("Conversation:not-a-uuid")]) {
        for (const response of await callConversationEntryPoints(user, bad)) {
          expectBadInput(response, { field: "id", mentions: "id" });
        }
      }
      expect(await conversationCount(user)).toBe(1);
    });

    it("should reject a Conversation ID where a Task ID is expected", async () => {
      const user = await newUser(server);
      await addTask(user);
      const conversationId = await createConversation(user);
      const before = await server.db.task.findMany({ where: { userId: user.id } });
      for (const [query, variables, field] of taskEntryPoints(conversationId)) {
        const response = await user.gql(query, variables);
        expectBadInput(response, { field, mentions: "Task ID" });
        expect(response.errors?.[0]?.message).toContain(field);
      }
      expect(await server.db.task.findMany({ where: { userId: user.id } })).toEqual(before);
      expect(await conversationCount(user)).toBe(1);
    });

    it("should reject a Task ID where a Conversation ID is expected", async () => {
      const user = await newUser(server);
      const taskId = await addTask(user);
      for (const response of await callConversationEntryPoints(user, taskId)) {
        expectBadInput(response, { field: "id", mentions: "Conversation ID" });
      }
      expect(await taskCount(user)).toBe(1);
    });

    it("should reject an ID of a type node(id) does not serve", async () => {
      const user = await newUser(server);
      const response = await user.gql(`query($id: ID!) { node(id: $id) { id } }`, {
        id: base64("User:00000000-0000-4000-8000-000000000000"),
      });
      expectBadInput(response, { field: "id", mentions: "id" });
    });
  });

  describe("conversation title", () => {
    it("should accept a 200-character title and reject a 201-character one", async () => {
      const user = await newUser(server);
      const ok = await user.gql(CREATE_CONVERSATION, { input: { title: "c".repeat(200) } });
      expect(ok.errors).toBeUndefined();
      expect(ok.data?.createConversation.title).toBe("c".repeat(200));
      expect(await conversationCount(user)).toBe(1);

      const tooLong = await user.gql(CREATE_CONVERSATION, { input: { title: "c".repeat(201) } });
      expectBadInput(tooLong, { field: "input.title", mentions: "input.title" });
      expect(tooLong.data ?? null).toBeNull();
      expect(await conversationCount(user)).toBe(1);
    });
  });

  describe("GraphQL validation and variable coercion", () => {
    it("should reject an unknown field in the query", async () => {
      const user = await newUser(server);
      const response = await user.gql(`{ tasks { edges { node { id bogusField } } } }`);
      expectBadInput(response, { mentions: "bogusField" });
      expect(response.data ?? null).toBeNull();
    });

    it("should reject a syntax error", async () => {
      const user = await newUser(server);
      const response = await user.gql(`{ tasks { edges `);
      expectBadInput(response, { mentions: /syntax/i });
    });

    it("should reject an unknown input field, inline or in a variable, and persist nothing", async () => {
      const user = await newUser(server);
      // (priority was the unknown field until tasks had one.)
      const inline = await user.gql(`mutation { addTask(input: { title: "x", colour: 1 }) { id } }`);
      expectBadInput(inline, { mentions: "colour" });
      const variable = await user.gql(ADD_TASK, { input: { title: "x", colour: 1 } });
      expectBadInput(variable, { mentions: "colour" });
      expect(variable.errors?.[0]?.message).toContain("$input");
      expect(await taskCount(user)).toBe(0);
    });

    it("should reject an object given for an ID! variable", async () => {
      const user = await newUser(server);
      const response = await user.gql(`query($id: ID!) { task(id: $id) { id } }`, { id: { id: "x" } });
      expectBadInput(response, { mentions: "$id" });
    });

    it("should reject a string given for the first variable", async () => {
      const user = await newUser(server);
      const response = await user.gql(`query($first: Int) { tasks(first: $first) { edges { node { id } } } }`, {
        first: "3",
      });
      expectBadInput(response, { mentions: "$first" });
    });

    it("should reject a number given for the title inside an input variable", async () => {
      const user = await newUser(server);
      const response = await user.gql(ADD_TASK, { input: { title: 5 } });
      expectBadInput(response, { mentions: "input.title" });
      expect(await taskCount(user)).toBe(0);
    });

    it("should reject a missing required variable", async () => {
      const user = await newUser(server);
      const response = await user.gql(ADD_TASK, {});
      expectBadInput(response, { mentions: "$input" });
      expect(await taskCount(user)).toBe(0);
    });
  });

  describe("connection arguments", () => {
    const TASKS = `query($first: Int, $last: Int, $after: String, $before: String) {
      tasks(first: $first, last: $last, after: $after, before: $before) { edges { node { id } } }
    }`;

    it("should reject first: -1 and first: 101", async () => {
      const user = await newUser(server);
      for (const first of [-1, 101]) {
        const response = await user.gql(TASKS, { first });
        expectBadInput(response, { field: "first", mentions: "first" });
        expect(response.data ?? null).toBeNull();
      }
    });

    it("should reject last: -1 and last: 101", async () => {
      const user = await newUser(server);
      for (const last of [-1, 101]) {
        const response = await user.gql(TASKS, { last });
        expectBadInput(response, { field: "last", mentions: "last" });
      }
    });

    it("should accept first: 0 and first: 100 at the bounds", async () => {
      const user = await newUser(server);
      await addTask(user);
      const zero = await user.gql(TASKS, { first: 0 });
      expect(zero.errors).toBeUndefined();
      expect(zero.data?.tasks.edges).toEqual([]);
      const hundred = await user.gql(TASKS, { first: 100 });
      expect(hundred.errors).toBeUndefined();
      expect(hundred.data?.tasks.edges).toHaveLength(1);
    });

    it("should reject a garbage after or before cursor on tasks", async () => {
      const user = await newUser(server);
      await addTask(user);
      const after = await user.gql(TASKS, { first: 2, after: "garbage" });
      expectBadInput(after, { field: "after", mentions: "after" });
      const before = await user.gql(TASKS, { last: 2, before: "garbage" });
      expectBadInput(before, { field: "before", mentions: "before" });
      const uuidLike = await user.gql(TASKS, { first: 2, after: base64("GPC:S:not-a-uuid") });
      expectBadInput(uuidLike, { field: "after", mentions: "after" });
    });

    it("should reject a garbage after cursor on nested conversation messages", async () => {
      const user = await newUser(server);
      await createConversation(user);
      const response = await user.gql(`{
        conversations { edges { node { id messages(after: "garbage") { edges { node { id } } } } } }
      }`);
      expectBadInput(response, { field: "after", mentions: "messages" });
      expect(response.data ?? null).toBeNull();
    });

    it("should reject a garbage before cursor on conversation(id).messages", async () => {
      const user = await newUser(server);
      const id = await createConversation(user);
      const response = await user.gql(
        `query($id: ID!) { conversation(id: $id) { messages(last: 2, before: "garbage") { edges { node { id } } } } }`,
        {
          id,
        },
      );
      expectBadInput(response, { field: "before", mentions: "before" });
    });
  });

  it("should keep a nonexistent Task ID of the right shape NOT_FOUND rather than bad input", async () => {
    const user = await newUser(server);
    const response = await user.gql(`query($id: ID!) { task(id: $id) { id } }`, {
      id: toGlobalId("Task", "00000000-0000-4000-8000-000000000000"),
    });
    expectNoLeak(response);
    expect(response.errors?.[0]?.extensions?.code).toBe("NOT_FOUND");
  });
});
