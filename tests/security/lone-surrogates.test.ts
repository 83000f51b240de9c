import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { newUser, startTestServer, type GraphQLResponse, type TestServer, type TestUser } from "../helpers/server.js";
import { wsClient, type TestWsClient } from "../helpers/ws-client.js";

/**
 * A JSON-escaped lone surrogate ("a\ud800b" in the variables) is a string
 * that has no UTF-8 form: stored, it would silently become U+FFFD. Every
 * stored string input refuses it with BAD_USER_INPUT naming the field, and
 * stores nothing, over HTTP and graphql-ws alike; a well-formed pair (an
 * emoji, "\ud83e\uddfe" escaped) is taken and stored exactly.
 */

const ADD_TASK = `mutation Add($input: AddTaskInput!) { addTask(input: $input) { id title description } }`;
const UPDATE_TASK = `mutation Update($input: UpdateTaskInput!) { updateTask(input: $input) { id title description } }`;
const CREATE_CONVERSATION = `mutation Create($input: CreateConversationInput) { createConversation(input: $input) { id title } }`;
const SEND_MESSAGE = `mutation Send($input: SendMessageInput!) { sendMessage(input: $input) { userMessage { id } } }`;

const LONE = ["a\uD800b", "\uDC00", "end\uDBFF", "\uDFFFstart", "x\uDC00\uD800y"];

describe("lone surrogates in stored input", () => {
  let server: TestServer;
  const clients: TestWsClient[] = [];

  beforeAll(async () => {
    server = await startTestServer();
  });
  afterAll(async () => {
    await Promise.all(clients.map((client) => client.dispose()));
    await server.close();
  });

  function expectRefused(response: GraphQLResponse, field: string): void {
    expect(response.errors, JSON.stringify(response)).toHaveLength(1);
    const [error] = response.errors!;
    expect(error!.extensions).toMatchObject({ code: "BAD_USER_INPUT", field });
    expect(error!.message).toBe(`${field}: must be well-formed Unicode (it has a lone surrogate, e.g. an unpaired \\ud800 escape)`);
  }

  async function storedRows(user: TestUser) {
    const where = { userId: user.id };
    const [tasks, conversations, messages] = await Promise.all([
      server.db.task.findMany({ where }),
      server.db.conversation.findMany({ where }),
      server.db.message.findMany({ where }),
    ]);
    return { tasks, conversations, messages };
  }

  async function addTask(user: TestUser, title: string): Promise<{ id: string; title: string; description: string | null }> {
    const response = await user.gql<{ addTask: { id: string; title: string; description: string | null } }>(ADD_TASK, { input: { title } });
    expect(response.errors).toBeUndefined();
    return response.data!.addTask;
  }

  it.each(LONE)("should refuse %j in every stored string input of every mutation, and store nothing", async (lone) => {
    const user = await newUser(server, "lone-surrogate");
    const task = await addTask(user, "Untouched");
    const before = await storedRows(user);

    expectRefused(await user.gql(ADD_TASK, { input: { title: lone } }), "input.title");
    expectRefused(await user.gql(ADD_TASK, { input: { title: "ok", description: lone } }), "input.description");
    expectRefused(await user.gql(UPDATE_TASK, { input: { id: task.id, title: lone } }), "input.title");
    expectRefused(await user.gql(UPDATE_TASK, { input: { id: task.id, description: lone } }), "input.description");
    expectRefused(await user.gql(CREATE_CONVERSATION, { input: { title: lone } }), "input.title");
    expectRefused(await user.gql(SEND_MESSAGE, { input: { content: lone } }), "input.content");
    expectRefused(await user.gql(SEND_MESSAGE, { input: { content: "hello", clientMessageId: lone } }), "input.clientMessageId");

    expect(await storedRows(user)).toEqual(before);
  });

  it("should refuse a lone surrogate sent over graphql-ws the same way", async () => {
    const user = await newUser(server, "lone-surrogate-ws");
    const client = wsClient(server.wsUrl, user.token);
    clients.push(client);
    const result = await client.subscribe(ADD_TASK, { input: { title: "a\uD800b" } }).next();
    expectRefused(result as GraphQLResponse, "input.title");
    expect(await server.db.task.count({ where: { userId: user.id } })).toBe(0);
  });

  it("should take and store a well-formed surrogate pair exactly", async () => {
    const user = await newUser(server, "surrogate-pair");
    const added = await addTask(user, "receipt \uD83E\uDDFE");
    expect(added.title).toBe("receipt 🧾");
    const row = await server.db.task.findFirstOrThrow({ where: { userId: user.id } });
    expect(row.title).toBe("receipt 🧾");
  });
});
