import { randomUUID } from "node:crypto";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import type { CallToolResult } from "@modelcontextprotocol/sdk/types.js";
import { isInterfaceType, type GraphQLObjectType } from "graphql";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { TOOLS } from "../../src/chat/tools.js";
import { parseId, toGlobalId, type NodeTypename } from "../../src/lib/ids.js";
import { schema } from "../../src/schema/index.js";
import { deferred, eventsUntilSettled, liveStream, type StreamEventView } from "../chat/support.js";
import { startChatRig, type ChatRig } from "../helpers/chat.js";
import { textReply, toolCallReply, wordChunks, type RecordedRequest } from "../helpers/fake-cohere.js";
import { newUser, type GraphQLResponse, type TestUser } from "../helpers/server.js";
import { wsClient, type QueuedSubscription, type TestWsClient } from "../helpers/ws-client.js";
import { readSse, within } from "../realtime/support.js";
import {
  cursorOf,
  each,
  idForms,
  Ledger,
  NODE_TYPES,
  Secrets,
  snapshot,
  target,
  userTables,
  visible,
  type EntryPoint,
  type IdForm,
  type Target,
} from "./isolation-support.js";

/**
 * The isolation attack suite (SC-004: zero cross-user access). Alice owns
 * tasks, conversations, messages, turns and tool calls, made through the API
 * and a (fake) model; Bob attacks with every one of her ids, written every way
 * an id can be written (global id, her uuid under another type, the raw
 * database id), through every root field of the schema, node(id), graphql-ws
 * and SSE subscriptions, every MCP tool, and every assistant tool called by a
 * model scripted to use her ids. Each attempt must get exactly the answer a
 * same-shaped id that names nothing gets, must carry nothing of Alice's, and
 * must leave every row of hers byte for byte as it was. A control repeats each
 * path as Alice, so no attack passes because its path is broken.
 *
 * The root fields and tools come from the schema and the tool registry: a field
 * or tool added later without a case here fails the first test.
 */

const NOT_FOUND_TOOL_TEXT = "Task not found. List the tasks to get valid ids.";
const TURN_NOT_FOUND_TOOL_TEXT = "Turn not found in this conversation. Omit turn_id to undo the latest turn that changed tasks.";

/** The fewest attempts a full run makes, by entry point (the run is deterministic: these are its counts). */
const EXPECTED_ATTEMPTS: Record<EntryPoint, number> = {
  query: 263,
  node: 114,
  mutation: 541,
  subscription: 125,
  mcp: 174,
  assistant: 174,
};

const NODE = /* GraphQL */ `
  query Node($id: ID!) {
    node(id: $id) {
      id
      __typename
      ... on Task {
        taskTitle: title
        description
        completed
        history(first: 10) {
          edges {
            node {
              id
              before
              after
            }
          }
        }
      }
      ... on Conversation {
        conversationTitle: title
        activeTurn {
          id
        }
        messagePage: messages(first: 50) {
          edges {
            node {
              id
              content
            }
          }
        }
      }
      ... on Message {
        role
        content
        toolCallId
        toolCalls {
          id
          name
          arguments
          result
          error
        }
        conversation {
          id
          title
        }
        turn {
          id
          status
        }
      }
      ... on Turn {
        status
        stopCode
        undoneAt
        conversation {
          id
          title
        }
        userMessage {
          content
        }
        turnMessages: messages {
          id
          content
        }
        taskEvents {
          id
          after
        }
        undoCheck {
          canUndo
          code
          reason
          taskIds
        }
        turnToolCalls: toolCalls {
          id
          arguments
          result
          error
          approval {
            status
            reason
            argumentsHash
          }
          tasks {
            id
            title
          }
        }
      }
      ... on TaskEvent {
        kind
        actor
        taskId
        toolCallId
        before
        after
        turn {
          id
          status
        }
        undoingTurn {
          id
        }
      }
    }
  }
`;
const TASK = `query Task($id: ID!) { task(id: $id) { id title description completed history(first: 20) { edges { node { id after } } } } }`;
const TASK_HISTORY = /* GraphQL */ `
  query History($id: ID!, $after: String, $before: String, $first: Int, $last: Int) {
    task(id: $id) {
      history(after: $after, before: $before, first: $first, last: $last) {
        edges {
          cursor
          node {
            id
            kind
            before
            after
          }
        }
        pageInfo {
          hasNextPage
          hasPreviousPage
        }
      }
    }
  }
`;
const CONVERSATION = /* GraphQL */ `
  query Conversation($id: ID!) {
    conversation(id: $id) {
      id
      title
      activeTurn {
        id
        status
      }
      messages(first: 50) {
        edges {
          node {
            id
            role
            content
          }
        }
      }
    }
  }
`;
const CONVERSATION_PAGE = /* GraphQL */ `
  query Page($id: ID!, $after: String, $before: String, $first: Int, $last: Int) {
    conversation(id: $id) {
      messages(after: $after, before: $before, first: $first, last: $last) {
        edges {
          cursor
          node {
            id
            content
          }
        }
        pageInfo {
          hasNextPage
          hasPreviousPage
        }
      }
    }
  }
`;
const TASKS = /* GraphQL */ `
  query Tasks($status: TaskStatusFilter, $after: String, $before: String, $first: Int, $last: Int, $filter: TaskFilter, $orderBy: TaskOrder) {
    tasks(status: $status, after: $after, before: $before, first: $first, last: $last, filter: $filter, orderBy: $orderBy) {
      edges {
        cursor
        node {
          id
          title
        }
      }
      pageInfo {
        hasNextPage
        hasPreviousPage
      }
    }
  }
`;
const CONVERSATIONS = /* GraphQL */ `
  query Conversations($after: String, $before: String, $first: Int, $last: Int) {
    conversations(after: $after, before: $before, first: $first, last: $last) {
      edges {
        cursor
        node {
          id
          title
          messages(first: 50) {
            edges {
              node {
                id
                content
              }
            }
          }
        }
      }
      pageInfo {
        hasNextPage
        hasPreviousPage
      }
    }
  }
`;
const ADD_TASK = `mutation Add($input: AddTaskInput!) { addTask(input: $input) { id title description completed } }`;
const UPDATE_TASK = `mutation Update($input: UpdateTaskInput!) { updateTask(input: $input) { id title description completed } }`;
const COMPLETE_TASK = `mutation Complete($id: ID!) { completeTask(id: $id) { id title completed } }`;
const VIEWER = `query { viewer { id timezone } }`;
const UPDATE_VIEWER = `mutation Tz($input: UpdateViewerInput!) { updateViewer(input: $input) { id timezone } }`;
const DELETE_TASK = `mutation Delete($id: ID!) { deleteTask(id: $id) { id title description } }`;
const CREATE_CONVERSATION = `mutation Create($input: CreateConversationInput) { createConversation(input: $input) { id title } }`;
const DELETE_CONVERSATION = `mutation DeleteConversation($id: ID!) { deleteConversation(id: $id) }`;
const UPDATE_CONVERSATION = `mutation UpdateConversation($input: UpdateConversationInput!) { updateConversation(input: $input) { id title } }`;
const CONVERSATION_CHANGED = `subscription { conversationChanged { kind conversationId conversation { id title } } }`;
const CANCEL_TURN = `mutation Cancel($id: ID!) { cancelTurn(id: $id) { id status stopCode messages { id content } } }`;
const DECIDE = /* GraphQL */ `
  mutation Decide($id: ID!, $decisions: [ToolCallDecision!]!) {
    decideToolCalls(turnId: $id, decisions: $decisions) {
      id
      status
      toolCalls {
        id
        approval {
          status
          reason
        }
        tasks {
          id
          title
        }
      }
    }
  }
`;
const TURN_UPDATED = /* GraphQL */ `
  subscription Turns($c: ID!) {
    turnUpdated(conversationId: $c) {
      id
      status
      userMessage {
        content
      }
      toolCalls {
        id
        approval {
          status
        }
      }
    }
  }
`;
const UNDO_TURN = /* GraphQL */ `
  mutation Undo($id: ID!) {
    undoTurn(id: $id) {
      turn {
        id
        undoneAt
      }
      reverted {
        id
        kind
        before
        after
      }
      tasks {
        id
        title
      }
    }
  }
`;
const SEND = /* GraphQL */ `
  mutation Send($input: SendMessageInput!) {
    sendMessage(input: $input) {
      conversation {
        id
        title
      }
      userMessage {
        id
        content
      }
      turn {
        id
        status
      }
      reply {
        id
        content
      }
      messages {
        id
        role
        content
      }
      toolCalls {
        id
        name
        arguments
        result
        error
        approval {
          status
        }
      }
    }
  }
`;
const MESSAGE_ADDED = /* GraphQL */ `
  subscription Added($c: ID, $afterSeq: Int) {
    messageAdded(conversationId: $c, afterSeq: $afterSeq) {
      id
      seq
      role
      content
      conversation {
        id
        title
      }
    }
  }
`;
const MESSAGE_STREAM = /* GraphQL */ `
  subscription Stream($c: ID!) {
    messageStream(conversationId: $c) {
      offset
      delta
      message {
        id
        seq
        role
        status
        content
      }
    }
  }
`;
const TASK_CHANGED = `subscription { taskChanged { kind taskId task { id title description completed } cause { id actor toolCallId turn { id } before after } } }`;

type RootType = "Query" | "Mutation" | "Subscription";
const ROOTS: readonly RootType[] = ["Query", "Mutation", "Subscription"];

interface SendView {
  conversation: { id: string; title: string | null };
  userMessage: { id: string; content: string };
  turn: { id: string; status: string };
  reply: { id: string; content: string } | null;
  messages: { id: string; role: string; content: string }[];
  toolCalls: { id: string; name: string; arguments: unknown; result: unknown; error: string | null; approval: { status: string } | null }[];
}

interface TaskChangedView {
  kind: string;
  taskId: string;
  task: { title: string } | null;
}

/** Whether `items` is `of` with some of its entries left out, in the same order. */
function isSubsequence(items: readonly string[], of: readonly string[]): boolean {
  let at = 0;
  for (const item of items) {
    while (at < of.length && of[at] !== item) at += 1;
    if (at === of.length) return false;
    at += 1;
  }
  return true;
}

describe("isolation attack suite: another user's ids at every entry point", () => {
  let rig: ChatRig;
  let alice: TestUser;
  let bob: TestUser;
  let secrets: Secrets;
  const ledger = new Ledger();
  const wsClients: TestWsClient[] = [];
  const mcpClients: Client[] = [];
  let aliceWs: TestWsClient;
  let bobWs: TestWsClient;
  let aliceMcp: Client;
  let bobMcp: Client;

  /** A word every text of Alice's carries: finding it in anything Bob gets is a leak. */
  const WORD = `alice-secret-${randomUUID().slice(0, 8)}`;
  const aliceClientMessageId = `alice-cmid-${randomUUID()}`;
  /** Alice's rows at the start: every one is attacked. */
  let targets: Target[] = [];
  const a = { chat: "", emptyChat: "", pendingTask: "", doneTask: "" };
  /** Bob's rows, made before and after Alice's, so that a page from one of her rows would show some of his. */
  const b = { pending: [] as string[], done: [] as string[], conversation: "" };

  // ---------------------------------------------------------------------------
  // Helpers

  async function ok<T = Record<string, any>>(user: TestUser, query: string, variables?: Record<string, unknown>): Promise<T> {
    const response = await user.gql<T>(query, variables);
    expect(response.errors, JSON.stringify(response.errors)).toBeUndefined();
    if (response.data === undefined || response.data === null) throw new Error("no data");
    return response.data;
  }

  function send(user: TestUser, input: Record<string, unknown>): Promise<GraphQLResponse<{ sendMessage: SendView }>> {
    return user.gql<{ sendMessage: SendView }>(SEND, { input });
  }

  function ofType(type: NodeTypename): Target[] {
    return targets.filter((t) => t.type === type);
  }

  function codeOf(response: GraphQLResponse): string | null {
    if (!response.errors) return null;
    return response.errors.length === 1 ? String(response.errors[0]?.extensions?.code) : `${response.errors.length} errors`;
  }

  /** The findings of one attempt: a different answer than the ghost's, an unexpected code, or Alice's data. */
  function judge(seen: string, ghost: string, expected: IdForm["code"], code: string | null): string[] {
    const findings: string[] = [];
    if (seen !== ghost) findings.push(`answered ${seen}, but an id that names nothing gets ${ghost}`);
    if (code !== expected) findings.push(`answered ${code ?? "without an error"} instead of ${expected ?? "without an error"}`);
    const found = secrets.foundIn(seen);
    if (found.length > 0) findings.push(`the answer carries Alice's ${found.join(", ")}`);
    return findings;
  }

  const ghostAnswers = new Map<string, Promise<{ seen: string }>>();
  /** The answer of the same operation with the form's ghost id, once per operation and shape. */
  function ghostOf(key: string, form: IdForm, ask: (id: string) => Promise<unknown>): Promise<{ seen: string }> {
    const cacheKey = `${key}\0${form.shape}`;
    let answer = ghostAnswers.get(cacheKey);
    if (!answer) {
      answer = ask(form.ghost).then((result) => ({ seen: visible(result, form.ghost) }));
      ghostAnswers.set(cacheKey, answer);
    }
    return answer;
  }

  /** Bob sends `document` with the form's id; judged against the ghost id's answer. */
  async function attackGql(
    entry: EntryPoint,
    field: string,
    document: string,
    variables: (id: string) => Record<string, unknown>,
    form: IdForm,
  ): Promise<void> {
    const response = await bob.gql(document, variables(form.value));
    const ghost = await ghostOf(`${document}\0${JSON.stringify(variables("<ID>"))}`, form, (id) => bob.gql(document, variables(id)));
    const findings = judge(visible(response, form.value), ghost.seen, form.code, codeOf(response));
    const message = response.errors?.[0]?.message ?? "";
    if (form.code === "NOT_FOUND" && !/^(Task|Conversation|Message|Turn|TaskEvent) not found$/.test(message)) findings.push(`said "${message}"`);
    ledger.record(entry, field, form.label, findings);
  }

  /** A subscription's first result and whether the server then ended it (a refused one must end). */
  async function firstOverWs(client: TestWsClient, query: string, variables: Record<string, unknown>): Promise<unknown> {
    const sub = client.subscribe(query, variables);
    try {
      const first = await sub.next(10_000);
      await within(sub.ended, 10_000, "the end of a refused subscription");
      return { first, ended: true };
    } catch (error) {
      return { failed: (error as Error).message, pending: sub.pending() };
    } finally {
      sub.dispose();
    }
  }

  async function firstOverSse(user: TestUser, query: string, variables: Record<string, unknown>): Promise<unknown> {
    const response = await fetch(rig.server.url, {
      method: "POST",
      headers: { accept: "text/event-stream", "content-type": "application/json", authorization: `Bearer ${user.token}` },
      body: JSON.stringify({ query, variables }),
    });
    const stream = readSse(response);
    try {
      const first = await stream.next(10_000);
      await within(stream.ended, 10_000, "the end of a refused SSE stream");
      return { status: response.status, first, completed: stream.completed() };
    } catch (error) {
      return { status: response.status, failed: (error as Error).message };
    } finally {
      await stream.cancel();
    }
  }

  function codeOfResult(answer: unknown): string | null {
    const first = (answer as { first?: { errors?: { extensions?: { code?: unknown } }[] } }).first;
    if (!first?.errors) return null;
    return first.errors.length === 1 ? String(first.errors[0]?.extensions?.code) : `${first.errors.length} errors`;
  }

  async function attackSubscription(field: string, query: string, variables: (id: string) => Record<string, unknown>, form: IdForm, sse = false) {
    const ask = (id: string) => (sse ? firstOverSse(bob, query, variables(id)) : firstOverWs(bobWs, query, variables(id)));
    const answer = await ask(form.value);
    const ghost = await ghostOf(`${sse ? "sse" : "ws"}\0${query}\0${JSON.stringify(variables("<ID>"))}`, form, ask);
    const label = sse ? `${form.label} (SSE)` : form.label;
    ledger.record("subscription", field, label, judge(visible(answer, form.value), ghost.seen, form.code, codeOfResult(answer)));
  }

  /** Alice's rows, byte for byte, must be what they were before `attacks`. */
  async function unchanged(entry: EntryPoint, field: string, attacks: () => Promise<void>): Promise<void> {
    await secrets.refresh();
    const before = await snapshot(rig.server.db, alice.id);
    const leaksBefore = ledger.leaks.length;
    await attacks();
    const after = await snapshot(rig.server.db, alice.id);
    if (JSON.stringify(after) !== JSON.stringify(before)) {
      ledger.leaks.push(`${entry} ${field}: Alice's rows changed:\n${JSON.stringify(before)}\n${JSON.stringify(after)}`);
    }
    expect(after).toEqual(before);
    ledger.expectNoLeaksSince(leaksBefore);
  }

  /** Every form of every target of `accepts`. */
  function formsFor(accepts: readonly NodeTypename[], of: readonly Target[] = targets): IdForm[] {
    return of.flatMap((t) => idForms(t, accepts));
  }

  async function aliceTask(title: string): Promise<string> {
    return (await ok<{ addTask: { id: string } }>(alice, ADD_TASK, { input: { title: `${WORD} ${title}` } })).addTask.id;
  }

  /** A turn of Alice's, in her chat, whose model adds one task: a turn of hers to undo in a control. */
  async function aliceAssistantTurn(title: string): Promise<{ id: string }> {
    rig.fake.enqueue(
      toolCallReply([{ id: `call_${randomUUID()}`, name: "add_task", args: { title: `${WORD} ${title}` } }], `${WORD} plan`),
      textReply(`${WORD} added`),
    );
    const response = await send(alice, { conversationId: a.chat, content: `${WORD} add ${title}` });
    expect(response.errors).toBeUndefined();
    return response.data!.sendMessage.turn;
  }

  // ---------------------------------------------------------------------------
  // Root fields: one case per field of Query, Mutation and Subscription

  /** The rows of a list Bob got, by global id: all must be his. */
  function idsIn(data: unknown): string[] {
    return [...JSON.stringify(data).matchAll(/"id":"([^"]+)"/g)].map((match) => match[1] ?? "");
  }

  async function bobsIds(types: readonly NodeTypename[] = ["Task", "Conversation", "Message"]): Promise<Set<string>> {
    const db = rig.server.db;
    const where = { userId: bob.id };
    const [tasks, conversations, messages] = await Promise.all([
      db.task.findMany({ where, select: { id: true } }),
      db.conversation.findMany({ where, select: { id: true } }),
      db.message.findMany({ where, select: { id: true } }),
    ]);
    return new Set([
      ...(types.includes("Task") ? tasks.map((row) => toGlobalId("Task", row.id)) : []),
      ...(types.includes("Conversation") ? conversations.map((row) => toGlobalId("Conversation", row.id)) : []),
      ...(types.includes("Message") ? messages.map((row) => toGlobalId("Message", row.id)) : []),
    ]);
  }

  /** Bob lists: every row in the answer is his, and nothing of Alice's is in it. */
  async function attackList(field: string, label: string, document: string, variables: Record<string, unknown>, expectedIds?: string[]) {
    const response = await bob.gql(document, variables);
    const findings: string[] = [];
    if (response.errors) findings.push(`failed: ${JSON.stringify(response.errors)}`);
    const mine = await bobsIds();
    const ids = idsIn(response.data);
    const foreign = ids.filter((id) => !mine.has(id));
    if (foreign.length > 0) findings.push(`listed rows that are not Bob's: ${foreign.join(", ")}`);
    if (expectedIds && JSON.stringify([...ids].sort()) !== JSON.stringify([...expectedIds].sort())) {
      findings.push(`listed ${JSON.stringify(ids)} instead of Bob's ${JSON.stringify(expectedIds)}`);
    }
    const found = secrets.foundIn(visible(response));
    if (found.length > 0) findings.push(`the answer carries Alice's ${found.join(", ")}`);
    ledger.record("query", field, label, findings);
  }

  /** Every row of Alice's, as a cursor, after and before, on a connection of Bob's: the same page as a cursor of no row. */
  async function attackCursors(field: string, document: string, base: Record<string, unknown>, size: number) {
    await each(targets, async (t) => {
      const form: IdForm = {
        label: `a cursor of ${t.label}`,
        value: cursorOf(t.uuid),
        ghost: cursorOf(randomUUID()),
        shape: "cursor",
        code: null,
        owned: false,
      };
      await attackGql("query", field, document, (cursor) => ({ ...base, after: cursor, first: size }), form);
      await attackGql("query", field, document, (cursor) => ({ ...base, before: cursor, last: size }), form);
    });
  }

  /**
   * The task list's keyset cursors (domain/task-order.ts) carry a key and an id
   * and never make the database look the row up: Alice's row's id in one pages
   * exactly as a ghost id with the same key does.
   */
  async function attackTaskCursors(size: number) {
    const taskCursor = (uuid: string) =>
      Buffer.from(`TaskCursor:${JSON.stringify(["CREATED_AT", "DESC", "2000-01-01T00:00:00.000Z", uuid])}`).toString("base64");
    await each(targets, async (t) => {
      const form: IdForm = {
        label: `a task cursor of ${t.label}`,
        value: taskCursor(t.uuid),
        ghost: taskCursor(randomUUID()),
        shape: "cursor",
        code: null,
        owned: false,
      };
      await attackGql("query", "Query.tasks", TASKS, (cursor) => ({ after: cursor, first: size }), form);
      await attackGql("query", "Query.tasks", TASKS, (cursor) => ({ before: cursor, last: size }), form);
    });
  }

  const CASES: Record<RootType, Record<string, () => Promise<void>>> = {
    Query: {
      node: async () => {
        await unchanged("node", "Query.node", async () => {
          await each(formsFor(NODE_TYPES), (form) => attackGql("node", "Query.node", NODE, (id) => ({ id }), form));
        });
        for (const t of targets) {
          const data = await ok<{ node: { id: string; __typename: string } }>(alice, NODE, { id: t.globalId });
          expect(data.node).toMatchObject({ id: t.globalId, __typename: t.type });
          ledger.control("Query.node");
        }
      },
      task: async () => {
        await unchanged("query", "Query.task", async () => {
          await each(formsFor(["Task"]), (form) => attackGql("query", "Query.task", TASK, (id) => ({ id }), form));
          await each(formsFor(["Task"]), (form) => attackGql("query", "Query.task", TASK_HISTORY, (id) => ({ id, first: 10 }), form));
          // Alice's rows (her events among them) as cursors of the history of Bob's own task.
          await attackCursors("Query.task", TASK_HISTORY, { id: b.done[0] }, 100);
        });
        for (const t of ofType("Task")) {
          expect((await ok<{ task: { id: string; title: string } }>(alice, TASK, { id: t.globalId })).task.id).toBe(t.globalId);
          ledger.control("Query.task");
        }
        // The cursor path works: Alice pages her task's history from its newest event.
        type HistoryPage = { task: { history: { edges: { cursor: string; node: { id: string } }[] } } };
        const history = await ok<HistoryPage>(alice, TASK_HISTORY, { id: a.doneTask, first: 10 });
        const [newest, ...older] = history.task.history.edges;
        expect(older.length).toBeGreaterThan(0);
        const rest = await ok<HistoryPage>(alice, TASK_HISTORY, { id: a.doneTask, first: 10, after: newest!.cursor });
        expect(rest.task.history.edges.map((edge) => edge.node.id)).toEqual(older.map((edge) => edge.node.id));
        ledger.control("Query.task");
      },
      conversation: async () => {
        await unchanged("query", "Query.conversation", async () => {
          await each(formsFor(["Conversation"]), (form) => attackGql("query", "Query.conversation", CONVERSATION, (id) => ({ id }), form));
          // Alice's rows as cursors of the messages of Bob's own conversation.
          await attackCursors("Query.conversation", CONVERSATION_PAGE, { id: b.conversation }, 100);
        });
        for (const t of ofType("Conversation")) {
          const data = await ok<{ conversation: { id: string } }>(alice, CONVERSATION, { id: t.globalId });
          expect(data.conversation.id).toBe(t.globalId);
          ledger.control("Query.conversation");
        }
        // The cursor path works: Alice pages her chat from its first message.
        const [first, ...rest] = ofType("Message").filter((t) => t.label.startsWith("Alice's chat"));
        const page = await ok<{ conversation: { messages: { edges: { node: { id: string } }[] } } }>(alice, CONVERSATION_PAGE, {
          id: a.chat,
          after: cursorOf(first!.uuid),
          first: 100,
        });
        expect(page.conversation.messages.edges.map((edge) => edge.node.id)).toEqual(rest.map((t) => t.globalId));
        ledger.control("Query.conversation");
      },
      viewer: async () => {
        // Alice's own zone, which Bob's viewer must never show.
        await ok(alice, UPDATE_VIEWER, { input: { timezone: "Pacific/Chatham" } });
        await unchanged("query", "Query.viewer", async () => {
          const seen = await bob.gql<{ viewer: { id: string; timezone: string } }>(VIEWER);
          const findings = [
            ...(seen.data?.viewer.id === bob.id ? [] : [`answered ${JSON.stringify(seen)}`]),
            ...(seen.data?.viewer.timezone === "Pacific/Chatham" ? ["Alice's time zone"] : []),
            ...secrets.foundIn(visible(seen, bob.id)).map((marker) => `the answer carries Alice's ${marker}`),
          ];
          ledger.record("query", "Query.viewer", "its own", findings);
        });
        expect((await ok<{ viewer: { id: string; timezone: string } }>(alice, VIEWER)).viewer).toEqual({ id: alice.id, timezone: "Pacific/Chatham" });
        ledger.control("Query.viewer");
      },
      tasks: async () => {
        await unchanged("query", "Query.tasks", async () => {
          const expected = { ALL: [...b.pending, ...b.done], PENDING: b.pending, COMPLETED: b.done };
          for (const status of ["ALL", "PENDING", "COMPLETED"] as const) {
            await attackList("Query.tasks", `status ${status}`, TASKS, { status, first: 100 }, expected[status]);
          }
          await attackList("Query.tasks", "the default status", TASKS, { first: 100 }, expected.ALL);
          // The filter and the orders: Alice's words find nothing of hers, and every order lists only Bob's.
          await attackList("Query.tasks", "a search for Alice's word", TASKS, { filter: { search: WORD }, first: 100 }, []);
          await attackList("Query.tasks", "a search for Alice's word as a prefix", TASKS, { filter: { search: WORD.slice(0, 10) }, first: 100 }, []);
          await attackList(
            "Query.tasks",
            "overdue, priorities and labels",
            TASKS,
            { filter: { overdue: false, priority: ["NONE"], labels: [] }, first: 100 },
            expected.ALL,
          );
          for (const field of ["CREATED_AT", "DUE_AT", "PRIORITY", "UPDATED_AT"]) {
            await attackList("Query.tasks", `orderBy ${field}`, TASKS, { orderBy: { field }, first: 100 }, expected.ALL);
          }
          await attackTaskCursors(100);
        });
        const all = await ok<{ tasks: { edges: { node: { id: string } }[] } }>(alice, TASKS, { first: 100 });
        const ids = all.tasks.edges.map((edge) => edge.node.id);
        for (const t of ofType("Task")) expect(ids).toContain(t.globalId);
        const [, ...older] = ids;
        const page = await ok<{ tasks: { edges: { node: { id: string } }[] } }>(alice, TASKS, {
          after: (all.tasks.edges[0] as unknown as { cursor: string }).cursor,
          first: 100,
        });
        expect(page.tasks.edges.map((edge) => edge.node.id)).toEqual(older);
        // Her search finds her task by her word.
        const found = await ok<{ tasks: { edges: { node: { id: string } }[] } }>(alice, TASKS, { filter: { search: WORD }, first: 100 });
        expect(found.tasks.edges.length).toBeGreaterThan(0);
        ledger.control("Query.tasks");
      },
      conversations: async () => {
        await unchanged("query", "Query.conversations", async () => {
          const mine = [...(await bobsIds(["Conversation", "Message"]))];
          await attackList("Query.conversations", "no arguments", CONVERSATIONS, { first: 20 }, mine);
          // 20: the nested messages(first: 50) keep the query under the cost limit.
          await attackCursors("Query.conversations", CONVERSATIONS, {}, 20);
        });
        const all = await ok<{ conversations: { edges: { node: { id: string } }[] } }>(alice, CONVERSATIONS, { first: 20 });
        const ids = all.conversations.edges.map((edge) => edge.node.id);
        for (const t of ofType("Conversation")) expect(ids).toContain(t.globalId);
        const [newest, ...older] = ids;
        const page = await ok<{ conversations: { edges: { node: { id: string } }[] } }>(alice, CONVERSATIONS, {
          after: cursorOf(parseId(newest!, "id", "Conversation")),
          first: 20,
        });
        expect(page.conversations.edges.map((edge) => edge.node.id)).toEqual(older);
        ledger.control("Query.conversations");
      },
    },

    Mutation: {
      addTask: async () => {
        await unchanged("mutation", "Mutation.addTask", async () => {
          // No argument names an owner: Bob's task is Bob's.
          const added = await bob.gql<{ addTask: { id: string } }>(ADD_TASK, { input: { title: "bob's own task" } });
          const row = added.data ? await rig.server.db.task.findUnique({ where: { id: parseId(added.data.addTask.id, "id", "Task") } }) : null;
          ledger.record("mutation", "Mutation.addTask", "its own input", row?.userId === bob.id ? [] : [`stored ${JSON.stringify(row)}`]);
          // An owner smuggled into the input is refused before anything is stored.
          const smuggled = await bob.gql(ADD_TASK, { input: { title: "bob's smuggled task", userId: alice.id } });
          const stored = await rig.server.db.task.count({ where: { title: "bob's smuggled task" } });
          const findings = [
            ...(smuggled.data?.addTask ? [`added ${JSON.stringify(smuggled.data)}`] : []),
            ...(stored > 0 ? ["stored the task"] : []),
            // Bob sent her user id himself: its echo in the error is his input, not her data.
            ...secrets.foundIn(visible(smuggled, alice.id)).map((marker) => `the answer carries Alice's ${marker}`),
          ];
          ledger.record("mutation", "Mutation.addTask", "input.userId set to Alice's", findings);
        });
        await aliceTask("control task");
        ledger.control("Mutation.addTask");
      },
      createConversation: async () => {
        await unchanged("mutation", "Mutation.createConversation", async () => {
          const made = await bob.gql<{ createConversation: { id: string } }>(CREATE_CONVERSATION, { input: { title: "bob's chat" } });
          const id = made.data ? parseId(made.data.createConversation.id, "id", "Conversation") : "";
          const row = id ? await rig.server.db.conversation.findUnique({ where: { id } }) : null;
          ledger.record("mutation", "Mutation.createConversation", "its own input", row?.userId === bob.id ? [] : [`stored ${JSON.stringify(row)}`]);
          const smuggled = await bob.gql(CREATE_CONVERSATION, { input: { title: "bob smuggled", userId: alice.id } });
          const stored = await rig.server.db.conversation.count({ where: { title: "bob smuggled" } });
          ledger.record(
            "mutation",
            "Mutation.createConversation",
            "input.userId set to Alice's",
            smuggled.data?.createConversation || stored > 0 ? [`created ${JSON.stringify(smuggled)}`] : [],
          );
        });
        await ok(alice, CREATE_CONVERSATION, { input: { title: `${WORD} control chat` } });
        ledger.control("Mutation.createConversation");
      },
      updateViewer: async () => {
        await ok(alice, UPDATE_VIEWER, { input: { timezone: "Pacific/Chatham" } });
        await unchanged("mutation", "Mutation.updateViewer", async () => {
          const own = await bob.gql<{ updateViewer: { id: string; timezone: string } }>(UPDATE_VIEWER, { input: { timezone: "Asia/Kolkata" } });
          ledger.record(
            "mutation",
            "Mutation.updateViewer",
            "its own input",
            own.data?.updateViewer.id === bob.id ? [] : [`answered ${JSON.stringify(own)}`],
          );
          // No argument names a user: one smuggled in is refused, and Alice's setting stays.
          const smuggled = await bob.gql(UPDATE_VIEWER, { input: { timezone: "Asia/Kolkata", userId: alice.id } });
          ledger.record(
            "mutation",
            "Mutation.updateViewer",
            "input.userId set to Alice's",
            smuggled.data?.updateViewer ? [`updated ${JSON.stringify(smuggled)}`] : [],
          );
        });
        expect(
          (await ok<{ updateViewer: { timezone: string } }>(alice, UPDATE_VIEWER, { input: { timezone: "Europe/Berlin" } })).updateViewer.timezone,
        ).toBe("Europe/Berlin");
        ledger.control("Mutation.updateViewer");
      },
      updateTask: async () => {
        // Every field the input takes, the scheduling ones included: none may reach her task.
        const input = (id: string) => ({
          input: {
            id,
            title: "bob-hijack",
            description: "bob was here",
            completed: true,
            dueAt: "2026-06-01T09:00:00Z",
            priority: "URGENT",
            labels: ["bob"],
            recurrence: "FREQ=DAILY",
          },
        });
        await unchanged("mutation", "Mutation.updateTask", async () => {
          await each(formsFor(["Task"]), (form) => attackGql("mutation", "Mutation.updateTask", UPDATE_TASK, input, form));
        });
        const id = await aliceTask("to update");
        const data = await ok<{ updateTask: { title: string; completed: boolean } }>(alice, UPDATE_TASK, {
          input: { id, title: `${WORD} updated`, completed: true },
        });
        expect(data.updateTask).toMatchObject({ title: `${WORD} updated`, completed: true });
        ledger.control("Mutation.updateTask");
      },
      completeTask: async () => {
        await unchanged("mutation", "Mutation.completeTask", async () => {
          await each(formsFor(["Task"]), (form) => attackGql("mutation", "Mutation.completeTask", COMPLETE_TASK, (id) => ({ id }), form));
        });
        const data = await ok<{ completeTask: { id: string; completed: boolean } }>(alice, COMPLETE_TASK, { id: a.pendingTask });
        expect(data.completeTask).toMatchObject({ id: a.pendingTask, completed: true });
        await ok(alice, UPDATE_TASK, { input: { id: a.pendingTask, completed: false } });
        ledger.control("Mutation.completeTask");
      },
      deleteTask: async () => {
        await unchanged("mutation", "Mutation.deleteTask", async () => {
          await each(formsFor(["Task"]), (form) => attackGql("mutation", "Mutation.deleteTask", DELETE_TASK, (id) => ({ id }), form));
        });
        const id = await aliceTask("to delete");
        expect((await ok<{ deleteTask: { id: string } }>(alice, DELETE_TASK, { id })).deleteTask.id).toBe(id);
        ledger.control("Mutation.deleteTask");
      },
      deleteConversation: async () => {
        await unchanged("mutation", "Mutation.deleteConversation", async () => {
          await each(formsFor(["Conversation"]), (form) =>
            attackGql("mutation", "Mutation.deleteConversation", DELETE_CONVERSATION, (id) => ({ id }), form),
          );
        });
        const made = await ok<{ createConversation: { id: string } }>(alice, CREATE_CONVERSATION, { input: { title: `${WORD} doomed` } });
        const id = made.createConversation.id;
        expect((await ok<{ deleteConversation: string }>(alice, DELETE_CONVERSATION, { id })).deleteConversation).toBe(id);
        ledger.control("Mutation.deleteConversation");
      },
      updateConversation: async () => {
        const input = (id: string) => ({ input: { id, title: "bob-hijack" } });
        const clear = (id: string) => ({ input: { id, title: null } });
        await unchanged("mutation", "Mutation.updateConversation", async () => {
          await each(formsFor(["Conversation"]), async (form) => {
            await attackGql("mutation", "Mutation.updateConversation", UPDATE_CONVERSATION, input, form);
            await attackGql("mutation", "Mutation.updateConversation", UPDATE_CONVERSATION, clear, {
              ...form,
              label: `${form.label}, clearing its title`,
            });
          });
        });
        const made = await ok<{ createConversation: { id: string } }>(alice, CREATE_CONVERSATION, { input: { title: `${WORD} to rename` } });
        const id = made.createConversation.id;
        const renamed = await ok<{ updateConversation: { id: string; title: string } }>(alice, UPDATE_CONVERSATION, {
          input: { id, title: `${WORD} renamed` },
        });
        expect(renamed.updateConversation).toEqual({ id, title: `${WORD} renamed` });
        ledger.control("Mutation.updateConversation");
      },
      sendMessage: async () => {
        const content = "bob writes into someone else's conversation";
        const into = (id: string) => ({ input: { conversationId: id, content, waitForReply: false } });
        const withKey = (id: string) => ({ input: { conversationId: id, content, clientMessageId: aliceClientMessageId, waitForReply: false } });
        await unchanged("mutation", "Mutation.sendMessage", async () => {
          await each(formsFor(["Conversation"]), (form) => attackGql("mutation", "Mutation.sendMessage", SEND, into, form));
          // Alice's idempotency key, into her conversation: still nothing of hers.
          await each(
            formsFor(["Conversation"]).filter((f) => f.owned),
            (form) => attackGql("mutation", "Mutation.sendMessage", SEND, withKey, { ...form, label: `${form.label} with Alice's clientMessageId` }),
          );
          // Alice's idempotency key for a new conversation of Bob's: Bob's own new turn, not hers, not "already used".
          rig.fake.enqueue(textReply("bob's own answer"));
          const response = await send(bob, { content: "bob's own words", clientMessageId: aliceClientMessageId });
          const findings: string[] = [];
          if (response.errors) findings.push(`failed: ${JSON.stringify(response.errors)}`);
          const payload = response.data?.sendMessage;
          const conversation = payload
            ? await rig.server.db.conversation.findUnique({ where: { id: parseId(payload.conversation.id, "id", "Conversation") } })
            : null;
          if (conversation?.userId !== bob.id) findings.push(`answered with conversation ${JSON.stringify(conversation)}`);
          if (payload?.userMessage.content !== "bob's own words") findings.push(`answered with ${JSON.stringify(payload?.userMessage)}`);
          findings.push(...secrets.foundIn(visible(response)).map((marker) => `the answer carries Alice's ${marker}`));
          ledger.record("mutation", "Mutation.sendMessage", "Alice's clientMessageId in a new conversation", findings);
        });
        rig.fake.enqueue(textReply(`${WORD} control answer`));
        const response = await send(alice, { conversationId: a.emptyChat, content: `${WORD} control message` });
        expect(response.errors).toBeUndefined();
        expect(response.data?.sendMessage.reply?.content).toBe(`${WORD} control answer`);
        ledger.control("Mutation.sendMessage");
      },
      cancelTurn: async () => {
        // A finished turn, and every other id of Alice's.
        await unchanged("mutation", "Mutation.cancelTurn", async () => {
          await each(formsFor(["Turn"]), (form) => attackGql("mutation", "Mutation.cancelTurn", CANCEL_TURN, (id) => ({ id }), form));
        });
        // A turn still running: the attacks must neither stop it nor see it, by any path.
        const never = deferred();
        const answer = `${WORD} is a long answer still being written while Bob attacks it`;
        const chunks = wordChunks(answer);
        rig.fake.enqueue(textReply(answer, { chunks, gate: { afterDeltas: 3, until: never.promise } }));
        const started = await send(alice, { content: `${WORD} think slowly`, waitForReply: false });
        expect(started.errors).toBeUndefined();
        const payload = started.data!.sendMessage;
        const conversationId = parseId(payload.conversation.id, "id", "Conversation");
        const prefix = chunks.slice(0, 3).join("");
        const streaming = await vi.waitFor(
          async () => {
            const row = await rig.server.db.message.findFirst({ where: { conversationId, role: "assistant" } });
            expect(row?.content, "the partial answer stored").toBe(prefix);
            return row;
          },
          { timeout: 15_000, interval: 20 },
        );
        const live = [
          target("Turn", parseId(payload.turn.id, "id", "Turn"), "Alice's running turn"),
          target("Conversation", conversationId, "Alice's busy conversation"),
          target("Message", streaming!.id, "Alice's streaming answer"),
          target("Message", parseId(payload.userMessage.id, "id", "Message"), "Alice's waiting message"),
        ];
        try {
          await unchanged("mutation", "Mutation.cancelTurn", async () => {
            await each(formsFor(["Turn"], live), (form) => attackGql("mutation", "Mutation.cancelTurn", CANCEL_TURN, (id) => ({ id }), form));
            // "missing", not "running": a running turn must not reveal that it exists either.
            await each(formsFor(["Turn"], live), (form) => attackGql("mutation", "Mutation.undoTurn", UNDO_TURN, (id) => ({ id }), form));
            await each(formsFor(NODE_TYPES, live), (form) => attackGql("node", "Query.node", NODE, (id) => ({ id }), form));
            // "missing", not "busy": a busy conversation must not reveal that it exists.
            const into = (id: string) => ({ input: { conversationId: id, content: "bob joins in", waitForReply: false } });
            await each(formsFor(["Conversation"], live), async (form) => {
              await attackGql("query", "Query.conversation", CONVERSATION, (id) => ({ id }), form);
              await attackGql("mutation", "Mutation.sendMessage", SEND, into, form);
              await attackGql("mutation", "Mutation.deleteConversation", DELETE_CONVERSATION, (id) => ({ id }), form);
              await attackSubscription("Subscription.messageStream", MESSAGE_STREAM, (id) => ({ c: id }), form);
              await attackSubscription("Subscription.messageAdded", MESSAGE_ADDED, (id) => ({ c: id, afterSeq: 0 }), form);
            });
          });
          const running = await rig.server.db.turn.findUniqueOrThrow({ where: { id: live[0]!.uuid } });
          expect(running).toMatchObject({ status: "RUNNING", cancelRequestedAt: null });
          // The control: Alice cancels her turn with the id Bob used.
          const cancelled = await ok<{ cancelTurn: { id: string; status: string } }>(alice, CANCEL_TURN, { id: payload.turn.id });
          expect(cancelled.cancelTurn).toMatchObject({ id: payload.turn.id, status: "CANCELLED" });
          ledger.control("Mutation.cancelTurn");
        } finally {
          never.resolve();
        }
      },
      decideToolCalls: async () => {
        const DECIDE_PATH = "Mutation.decideToolCalls";
        // Alice's turn waiting for her approval of a delete, and Bob's own waiting turn.
        const doomed = await aliceTask("awaiting approval");
        const aliceCall = `call_alice_held_${randomUUID()}`;
        rig.fake.enqueue(toolCallReply([{ id: aliceCall, name: "delete_task", args: { task_id: doomed } }], `${WORD} ask first`));
        const waiting = await send(alice, { content: `${WORD} delete with approval` });
        expect(waiting.errors).toBeUndefined();
        const held = waiting.data!.sendMessage;
        expect(held.turn.status).toBe("REQUIRES_ACTION");
        const bobsTask = (await ok<{ addTask: { id: string } }>(bob, ADD_TASK, { input: { title: "bob's doomed task" } })).addTask.id;
        const bobCall = `call_bob_held_${randomUUID()}`;
        rig.fake.enqueue(toolCallReply([{ id: bobCall, name: "delete_task", args: { task_id: bobsTask } }], "bob asks first"));
        const bobWaiting = (await send(bob, { content: "bob deletes with approval" })).data!.sendMessage;
        expect(bobWaiting.turn.status).toBe("REQUIRES_ACTION");
        const live = [
          target("Turn", parseId(held.turn.id, "id", "Turn"), "Alice's turn waiting for approval"),
          target("Conversation", parseId(held.conversation.id, "id", "Conversation"), "Alice's conversation waiting for approval"),
        ];
        const decisions = (approve: boolean) => [{ toolCallId: aliceCall, approve, reason: "bob decides" }];
        await unchanged("mutation", DECIDE_PATH, async () => {
          for (const approve of [true, false]) {
            await each(formsFor(["Turn"], [...targets, ...live]), (form) =>
              attackGql("mutation", DECIDE_PATH, DECIDE, (id) => ({ id, decisions: decisions(approve) }), form),
            );
          }
          await each(formsFor(["Turn"], live), (form) => attackGql("mutation", "Mutation.cancelTurn", CANCEL_TURN, (id) => ({ id }), form));
          await each(formsFor(NODE_TYPES, live), (form) => attackGql("node", "Query.node", NODE, (id) => ({ id }), form));
          await each(formsFor(["Conversation"], live), (form) =>
            attackSubscription("Subscription.turnUpdated", TURN_UPDATED, (id) => ({ c: id }), form),
          );
          // Alice's call id on Bob's own waiting turn: the answer an id of no call gets, and nothing of hers decided.
          const ghost = await bob.gql(DECIDE, { id: bobWaiting.turn.id, decisions: [{ toolCallId: `call_ghost_${randomUUID()}`, approve: true }] });
          const mine = await bob.gql(DECIDE, { id: bobWaiting.turn.id, decisions: [{ toolCallId: aliceCall, approve: true }] });
          const findings = judge(visible(mine, aliceCall), visible(ghost).replace(/call_ghost_[0-9a-f-]+/g, "<ID>"), "BAD_USER_INPUT", codeOf(mine));
          ledger.record("mutation", DECIDE_PATH, "Alice's tool call id on Bob's own waiting turn", findings);
        });
        expect(await rig.server.db.toolApproval.findFirst({ where: { toolCallId: aliceCall } })).toMatchObject({ status: "PENDING" });
        await ok(bob, CANCEL_TURN, { id: bobWaiting.turn.id });
        // The control: Alice approves with the ids Bob used, and her turn runs on.
        rig.fake.enqueue(textReply(`${WORD} deleted after approval`));
        const decided = await ok<{ decideToolCalls: { id: string; status: string } }>(alice, DECIDE, {
          id: held.turn.id,
          decisions: [{ toolCallId: aliceCall, approve: true }],
        });
        expect(decided.decideToolCalls).toMatchObject({ id: held.turn.id, status: "RUNNING" });
        await vi.waitFor(
          async () =>
            expect((await rig.server.db.turn.findUniqueOrThrow({ where: { id: live[0]!.uuid } })).status, "Alice's approved turn").toBe("COMPLETED"),
          { timeout: 15_000, interval: 20 },
        );
        expect(await rig.server.db.task.findUnique({ where: { id: parseId(doomed, "id", "Task") } })).toBeNull();
        ledger.control(DECIDE_PATH);
      },
      undoTurn: async () => {
        await unchanged("mutation", "Mutation.undoTurn", async () => {
          await each(formsFor(["Turn"]), (form) => attackGql("mutation", "Mutation.undoTurn", UNDO_TURN, (id) => ({ id }), form));
        });
        // The control: Alice undoes a turn of hers that added a task (not one the other cases aim at).
        const turn = await aliceAssistantTurn("to be undone");
        const data = await ok<{ undoTurn: { turn: { id: string; undoneAt: string | null }; reverted: { kind: string }[] } }>(alice, UNDO_TURN, {
          id: turn.id,
        });
        expect(data.undoTurn.turn).toMatchObject({ id: turn.id, undoneAt: expect.any(String) });
        expect(data.undoTurn.reverted.map((event) => event.kind)).toEqual(["DELETED"]);
        ledger.control("Mutation.undoTurn");
      },
    },

    Subscription: {
      turnUpdated: async () => {
        const TURN_UPDATED_PATH = "Subscription.turnUpdated";
        await unchanged("subscription", TURN_UPDATED_PATH, async () => {
          await each(formsFor(["Conversation"]), async (form) => {
            await attackSubscription(TURN_UPDATED_PATH, TURN_UPDATED, (id) => ({ c: id }), form);
            if (form.owned) await attackSubscription(TURN_UPDATED_PATH, TURN_UPDATED, (id) => ({ c: id }), form, true);
          });
        });
        // Both follow a conversation of their own; Alice's turn reaches her, and Bob's first event is his own turn.
        const made = await ok<{ createConversation: { id: string } }>(alice, CREATE_CONVERSATION, { input: { title: `${WORD} turns` } });
        const before = rig.server.app.turns.establishedCount;
        const aliceTurns = aliceWs.subscribe<{ turnUpdated: { id: string; status: string } }>(TURN_UPDATED, { c: made.createConversation.id });
        const bobTurns = bobWs.subscribe<{ turnUpdated: { id: string; status: string; userMessage: { content: string } } }>(TURN_UPDATED, {
          c: b.conversation,
        });
        try {
          await vi.waitFor(() => expect(rig.server.app.turns.establishedCount - before, "both turnUpdated subscriptions").toBe(2), {
            timeout: 10_000,
            interval: 10,
          });
          rig.fake.enqueue(textReply(`${WORD} turn answer`));
          const sent = await send(alice, { conversationId: made.createConversation.id, content: `${WORD} a turn` });
          expect(sent.errors).toBeUndefined();
          expect((await nextOf(aliceTurns, "Alice's turn")).turnUpdated).toMatchObject({ id: sent.data!.sendMessage.turn.id, status: "RUNNING" });
          ledger.control(TURN_UPDATED_PATH);
          rig.fake.enqueue(textReply("bob's turn answer"));
          expect((await send(bob, { conversationId: b.conversation, content: "bob's turn sentinel" })).errors).toBeUndefined();
          const first = await nextOf(bobTurns, "Bob's turn");
          const findings = [
            ...(first.turnUpdated.userMessage.content === "bob's turn sentinel" ? [] : [`Bob's first event was ${JSON.stringify(first)}`]),
            ...secrets.foundIn(visible([first, ...bobTurns.pending()])).map((marker) => `Bob received Alice's ${marker}`),
          ];
          ledger.record("subscription", TURN_UPDATED_PATH, "Alice's turn starting while Bob follows his own conversation", findings);
        } finally {
          aliceTurns.dispose();
          bobTurns.dispose();
        }
      },
      messageAdded: async () => {
        await unchanged("subscription", "Subscription.messageAdded", async () => {
          await each(formsFor(["Conversation"]), async (form) => {
            await attackSubscription("Subscription.messageAdded", MESSAGE_ADDED, (id) => ({ c: id }), form);
            if (!form.owned) return;
            await attackSubscription("Subscription.messageAdded", MESSAGE_ADDED, (id) => ({ c: id, afterSeq: 0 }), {
              ...form,
              label: `${form.label}, replayed from seq 0`,
            });
            await attackSubscription("Subscription.messageAdded", MESSAGE_ADDED, (id) => ({ c: id, afterSeq: 0 }), form, true);
          });
        });
        // The control: Alice replays her chat with the id Bob used.
        const replay = aliceWs.subscribe<{ messageAdded: { id: string } }>(MESSAGE_ADDED, { c: a.chat, afterSeq: 0 });
        const expected = ofType("Message").filter((t) => t.label.startsWith("Alice's chat"));
        for (const t of expected) expect((await replay.next()).data?.messageAdded.id).toBe(t.globalId);
        replay.dispose();
        // And over SSE, the other transport Bob tried.
        const response = await fetch(rig.server.url, {
          method: "POST",
          headers: { accept: "text/event-stream", "content-type": "application/json", authorization: `Bearer ${alice.token}` },
          body: JSON.stringify({ query: MESSAGE_ADDED, variables: { c: a.chat, afterSeq: 0 } }),
        });
        const sse = readSse(response);
        try {
          expect((await sse.next()).data?.messageAdded.id).toBe(expected[0]?.globalId);
        } finally {
          await sse.cancel();
        }
        ledger.control("Subscription.messageAdded");
      },
      messageStream: async () => {
        await unchanged("subscription", "Subscription.messageStream", async () => {
          await each(formsFor(["Conversation"]), async (form) => {
            await attackSubscription("Subscription.messageStream", MESSAGE_STREAM, (id) => ({ c: id }), form);
            if (form.owned) await attackSubscription("Subscription.messageStream", MESSAGE_STREAM, (id) => ({ c: id }), form, true);
          });
        });
        // The control is Alice's stream in the taskChanged case, which receives her answer as it is written.
        const stream = await liveStream(rig.server, aliceWs, a.chat);
        stream.dispose();
        ledger.control("Subscription.messageStream");
      },
      taskChanged: async () => {
        await broadcast();
      },
      conversationChanged: async () => {
        await conversationBroadcast();
      },
    },
  };

  /**
   * Alice's conversation list changes (created, renamed, a message, deleted)
   * while both follow theirs: Alice gets each change (the control), and Bob's
   * first event is his own sentinel conversation, nothing of hers.
   */
  async function conversationBroadcast(): Promise<void> {
    const PATH = "Subscription.conversationChanged";
    type Change = { conversationChanged: { kind: string; conversationId: string; conversation: { id: string; title: string | null } | null } };
    const before = rig.server.app.realtime.establishedCount;
    const aliceList = aliceWs.subscribe<Change>(CONVERSATION_CHANGED);
    const bobList = bobWs.subscribe<Change>(CONVERSATION_CHANGED);
    try {
      await vi.waitFor(
        () => expect(rig.server.app.realtime.establishedCount - before, "both conversationChanged subscriptions").toBeGreaterThanOrEqual(2),
        {
          timeout: 10_000,
          interval: 10,
        },
      );
      const made = await ok<{ createConversation: { id: string } }>(alice, CREATE_CONVERSATION, { input: { title: `${WORD} listed` } });
      const id = made.createConversation.id;
      expect((await nextOf(aliceList, "Alice's new conversation")).conversationChanged).toMatchObject({ kind: "CREATED", conversationId: id });
      await ok(alice, UPDATE_CONVERSATION, { input: { id, title: `${WORD} listed, renamed` } });
      expect((await nextOf(aliceList, "Alice's rename")).conversationChanged).toMatchObject({
        kind: "UPDATED",
        conversation: { title: `${WORD} listed, renamed` },
      });
      await ok(alice, DELETE_CONVERSATION, { id });
      expect((await nextOf(aliceList, "Alice's deletion")).conversationChanged).toEqual({ kind: "DELETED", conversationId: id, conversation: null });
      ledger.control(PATH);
      const sentinel = await ok<{ createConversation: { id: string } }>(bob, CREATE_CONVERSATION, { input: { title: "bob's sentinel chat" } });
      const first = await nextOf(bobList, "Bob's sentinel conversation");
      const findings = [
        ...(first.conversationChanged.conversationId === sentinel.createConversation.id ? [] : [`Bob's first event was ${JSON.stringify(first)}`]),
        ...secrets.foundIn(visible([first, ...bobList.pending()])).map((marker) => `Bob received Alice's ${marker}`),
      ];
      ledger.record("subscription", PATH, "Alice's conversations created, renamed and deleted while Bob follows his list", findings);
    } finally {
      aliceList.dispose();
      bobList.dispose();
    }
  }

  /**
   * Alice changes tasks and chats while both users subscribe: her
   * subscriptions (the control) get every event, Bob's get none of them. Bob
   * then makes changes of his own, and his subscriptions' first events must be
   * his: anything of Alice's routed to him would have come first.
   */
  /** The next result's data; a failure names what was awaited. */
  async function nextOf<T>(sub: QueuedSubscription<T>, what: string): Promise<T> {
    const result = await sub.next(10_000).catch((error: Error) => {
      throw new Error(`${what}: ${error.message}`);
    });
    if (result.errors || !result.data) throw new Error(`${what}: ${JSON.stringify(result)}`);
    return result.data;
  }

  async function broadcast(): Promise<void> {
    const server = rig.server;
    const made = await ok<{ createConversation: { id: string } }>(alice, CREATE_CONVERSATION, { input: { title: `${WORD} broadcast` } });
    const aliceChat = made.createConversation.id;

    const before = server.app.realtime.establishedCount;
    const aliceTasks = aliceWs.subscribe<{ taskChanged: TaskChangedView }>(TASK_CHANGED);
    const aliceAdded = aliceWs.subscribe<{ messageAdded: { id: string; content: string } }>(MESSAGE_ADDED, {});
    const bobTasks = bobWs.subscribe<{ taskChanged: { kind: string; taskId: string } }>(TASK_CHANGED);
    const bobAdded = bobWs.subscribe<{ messageAdded: { id: string; content: string } }>(MESSAGE_ADDED, {});
    await vi.waitFor(() => expect(server.app.realtime.establishedCount, "established subscriptions").toBeGreaterThanOrEqual(before + 4), {
      timeout: 10_000,
      interval: 10,
    });
    const aliceStream = await liveStream(server, aliceWs, aliceChat);
    const bobStream = await liveStream(server, bobWs, b.conversation);
    const subs: QueuedSubscription[] = [aliceTasks, aliceAdded, bobTasks, bobAdded, aliceStream, bobStream];

    try {
      // Alice's changes: four by the API, two by the assistant's tool calls, and a streamed answer.
      const task = await aliceTask("broadcast task");
      await ok(alice, UPDATE_TASK, { input: { id: task, title: `${WORD} broadcast renamed` } });
      await ok(alice, COMPLETE_TASK, { id: task });
      await ok(alice, DELETE_TASK, { id: task });
      const answer = `${WORD} streamed answer for Alice only`;
      const assistantTitle = `${WORD} added by the assistant`;
      // A script left over from an earlier case would answer this turn in its place.
      expect(rig.fake.pending(), "scripts left in the fake Cohere").toBe(0);
      rig.fake.enqueue(
        toolCallReply([{ id: `call_${randomUUID()}`, name: "add_task", args: { title: assistantTitle } }], `${WORD} plan`),
        // Slow enough to be stored in several flushes: an answer settled in one is messageAdded's alone.
        textReply(answer, { eventDelayMs: 40 }),
      );
      const sent = await send(alice, { conversationId: aliceChat, content: `${WORD} add one more` });
      expect(sent.errors).toBeUndefined();
      const aliceMessages = sent.data!.sendMessage.messages;

      // The control: Alice's subscriptions got all of it. taskChanged re-reads the row a hint names, so
      // changes that come faster than the re-read arrive collapsed into the newest (the completion into
      // the deletion, say): read until both tasks' last states are in, whatever came between.
      const aliceTaskEvents: TaskChangedView[] = [];
      const settled = () =>
        aliceTaskEvents.some((event) => event.taskId === task && event.kind === "DELETED") &&
        aliceTaskEvents.some((event) => event.kind === "CREATED" && event.task?.title === assistantTitle);
      while (!settled()) {
        const event = await nextOf(aliceTasks, `Alice's task event ${aliceTaskEvents.length + 1}`).catch(async (error: Error) => {
          // Tells a lost or late event apart from a tool call that never added the task.
          const added = await rig.server.db.task.count({ where: { userId: alice.id, title: assistantTitle } });
          const turn = aliceMessages.map((m) => `${m.role}: ${m.content.slice(0, 80)}`);
          const calls = sent.data!.sendMessage.toolCalls.map((c) => ({ name: c.name, error: c.error, approval: c.approval?.status }));
          throw new Error(
            `${error.message}; events so far ${JSON.stringify(aliceTaskEvents)}; tasks the assistant added: ${added}; the turn: ${JSON.stringify(turn)}; its tool calls: ${JSON.stringify(calls)}`,
          );
        });
        aliceTaskEvents.push(event.taskChanged);
      }
      const kindsOf = (own: (event: (typeof aliceTaskEvents)[number]) => boolean) => aliceTaskEvents.filter(own).map((event) => event.kind);
      const apiKinds = kindsOf((event) => event.taskId === task);
      // In order, each at most once but the two updates, ending in the deletion.
      expect(isSubsequence(apiKinds, ["CREATED", "UPDATED", "UPDATED", "DELETED"]), apiKinds.join(",")).toBe(true);
      expect(apiKinds.at(-1)).toBe("DELETED");
      expect(kindsOf((event) => event.taskId !== task)).toEqual(["CREATED"]);
      const aliceAddedEvents = [];
      for (let i = 0; i < aliceMessages.length; i += 1) aliceAddedEvents.push((await nextOf(aliceAdded, `Alice's message ${i + 1}`)).messageAdded);
      expect(aliceAddedEvents.map((m) => m.id)).toEqual(aliceMessages.map((m) => m.id));
      const aliceStreamEvents: StreamEventView[] = [];
      while (aliceStreamEvents.at(-1)?.message.content !== answer) {
        const events = await eventsUntilSettled(aliceStream).catch((error: Error) => {
          throw new Error(`Alice's answer stream after ${JSON.stringify(aliceStreamEvents)}: ${error.message}`);
        });
        aliceStreamEvents.push(...events);
      }
      ledger.control("Subscription.taskChanged");
      ledger.control("Subscription.messageAdded");
      ledger.control("Subscription.messageStream");

      // Bob's own changes (which change nothing of Alice's): his subscriptions' first events must be these.
      let bobTask = "";
      await unchanged("subscription", "Subscription.taskChanged", async () => {
        bobTask = (await ok<{ addTask: { id: string } }>(bob, ADD_TASK, { input: { title: "bob's sentinel" } })).addTask.id;
        rig.fake.enqueue(textReply("bob's sentinel answer, written word by word", { eventDelayMs: 40 }));
        const bobSent = await send(bob, { conversationId: b.conversation, content: "bob's sentinel" });
        expect(bobSent.errors).toBeUndefined();
      });
      const bobTaskEvent = { data: await nextOf(bobTasks, "Bob's task event") };
      const bobAddedEvent = { data: await nextOf(bobAdded, "Bob's message") };
      const bobStreamEvents = await eventsUntilSettled(bobStream).catch((error: Error) => {
        throw new Error(`Bob's answer stream: ${error.message}`);
      });

      const received = [bobTaskEvent, bobAddedEvent, ...bobStreamEvents, ...bobTasks.pending(), ...bobAdded.pending(), ...bobStream.pending()];
      const text = visible(received);
      const findings = (id: string) => (text.includes(id) ? [`Bob's subscription received ${id}`] : []);
      for (const event of aliceTaskEvents)
        ledger.record("subscription", "Subscription.taskChanged", `Alice's ${event.kind} of a task`, findings(event.taskId));
      for (const m of aliceAddedEvents) ledger.record("subscription", "Subscription.messageAdded", "Alice's new message", findings(m.id));
      // One attempt per streamed answer (how many pieces it comes in depends on timing).
      for (const id of new Set(aliceStreamEvents.map((event) => event.message.id))) {
        ledger.record("subscription", "Subscription.messageStream", "Alice's answer as it is written", findings(id));
      }
      const leaksBefore = ledger.leaks.length;
      const found = secrets.foundIn(text);
      if (found.length > 0) ledger.leaks.push(`subscriptions: Bob received Alice's ${found.join(", ")}`);
      expect(bobTaskEvent.data?.taskChanged).toMatchObject({ kind: "CREATED", taskId: bobTask });
      expect((bobAddedEvent.data as { messageAdded: { content: string } }).messageAdded.content).toBe("bob's sentinel");
      expect(bobStreamEvents.at(-1)?.message.content).toBe("bob's sentinel answer, written word by word");
      ledger.expectNoLeaksSince(leaksBefore);
    } finally {
      for (const sub of subs) sub.dispose();
    }
  }

  // ---------------------------------------------------------------------------
  // Tools: the MCP server and the assistant share one registry

  /** The tools that take an id: the type of id each takes, and its arguments; the others are attacked by lists and owners. */
  interface IdTool {
    accepts: readonly NodeTypename[];
    args: (id: string) => Record<string, unknown>;
  }
  const TOOL_ARGS: Record<string, IdTool | null> = {
    add_task: null,
    list_tasks: null,
    complete_task: { accepts: ["Task"], args: (id) => ({ task_id: id }) },
    delete_task: { accepts: ["Task"], args: (id) => ({ task_id: id }) },
    update_task: {
      accepts: ["Task"],
      args: (id) => ({
        task_id: id,
        title: "bob-hijack",
        description: "bob was here",
        due: "2026-06-01",
        priority: "urgent",
        labels: ["bob"],
        recurrence: "FREQ=DAILY",
      }),
    },
    search_tasks: null,
    complete_tasks: { accepts: ["Task"], args: (id) => ({ task_ids: [id] }) },
    delete_tasks: { accepts: ["Task"], args: (id) => ({ task_ids: [id] }) },
    undo_turn: { accepts: ["Turn"], args: (id) => ({ turn_id: id }) },
  };

  /** The id a planned call sends, whichever argument carries it. */
  function sentId(args: Record<string, unknown>): string | undefined {
    const id = args.task_id ?? args.turn_id ?? (Array.isArray(args.task_ids) ? args.task_ids[0] : undefined);
    return typeof id === "string" ? id : undefined;
  }

  function toolCode(text: string): IdForm["code"] | string {
    if (text === NOT_FOUND_TOOL_TEXT || text === TURN_NOT_FOUND_TOOL_TEXT) return "NOT_FOUND";
    if (/^task_id ".*" is not a task id; use an id that add_task or list_tasks returned$/.test(text)) return "BAD_USER_INPUT";
    if (/^turn_id ".*" is not a turn id$/.test(text)) return "BAD_USER_INPUT";
    if (text === "task_ids: one of them is not a task id; use ids that search_tasks returned") return "BAD_USER_INPUT";
    return text;
  }

  function toolText(result: CallToolResult): string {
    const [content] = result.content;
    return content?.type === "text" ? content.text : JSON.stringify(result.content);
  }

  /** The tool's result; a protocol error (which a tool call must never give) becomes a result naming it. */
  async function mcpAnswer(client: Client, name: string, args: Record<string, unknown>): Promise<CallToolResult> {
    try {
      return (await client.callTool({ name, arguments: args })) as CallToolResult;
    } catch (error) {
      return { isError: true, content: [{ type: "text", text: `protocol error: ${(error as Error).message}` }] };
    }
  }

  function mcpConnect(user: TestUser): Promise<Client> {
    const client = new Client({ name: "isolation-attack", version: "1.0.0" });
    mcpClients.push(client);
    const transport = new StreamableHTTPClientTransport(new URL(`${rig.server.baseUrl}/mcp`), {
      requestInit: { headers: { authorization: `Bearer ${user.token}` } },
    });
    return client.connect(transport).then(() => client);
  }

  // ---------------------------------------------------------------------------

  beforeAll(async () => {
    // The assistant-tools attack makes every call (about 90) in one model step: the
    // per-step bound (16 by default, tests/chat/step-bounds.test.ts) is raised so all of them run.
    // The running-turn attacks (cancelTurn) hold Alice's model call silent on a gate for as long
    // as Bob's attempts take: the turn must end when that gate opens, not when the test helper's
    // 5 s silence bound or 20 s turn bound runs out on a loaded machine (which changed her rows
    // mid-attack: the answer FAILED, a timeout reply). Those bounds are tests/chat's subject.
    rig = await startChatRig({ assistant: { maxToolCallsPerStep: 1000, callTimeoutMs: 600_000, turnTimeoutMs: 600_000 } });
    const server = rig.server;
    alice = await newUser(server, "alice");
    bob = await newUser(server, "bob");
    secrets = new Secrets(server.db, alice.id, WORD);

    // Bob's rows from before Alice's.
    const bobTask = async (title: string, done: boolean) => {
      const id = (await ok<{ addTask: { id: string } }>(bob, ADD_TASK, { input: { title } })).addTask.id;
      if (done) await ok(bob, COMPLETE_TASK, { id });
      (done ? b.done : b.pending).push(id);
    };
    await bobTask("bob's oldest, pending", false);
    await bobTask("bob's oldest, done", true);
    for (const title of ["bob's oldest chat", "bob's older chat"]) await ok(bob, CREATE_CONVERSATION, { input: { title } });

    // Alice's rows, made as she would make them.
    a.pendingTask = await aliceTask("pending");
    await ok(alice, UPDATE_TASK, { input: { id: a.pendingTask, description: `${WORD} details` } });
    a.doneTask = await aliceTask("done");
    await ok(alice, COMPLETE_TASK, { id: a.doneTask });
    rig.fake.enqueue(
      toolCallReply([{ id: `call_alice_${randomUUID()}`, name: "add_task", args: { title: `${WORD} added by the assistant` } }], `${WORD} plan`),
      textReply(`${WORD} answer`),
    );
    const sent = await send(alice, { content: `${WORD} add a task please`, clientMessageId: aliceClientMessageId });
    expect(sent.errors).toBeUndefined();
    a.chat = sent.data!.sendMessage.conversation.id;
    a.emptyChat = (
      await ok<{ createConversation: { id: string } }>(alice, CREATE_CONVERSATION, { input: { title: `${WORD} empty` } })
    ).createConversation.id;

    const db = server.db;
    const where = { userId: alice.id };
    const chatId = parseId(a.chat, "id", "Conversation");
    targets = [
      ...(await db.task.findMany({ where, orderBy: { createdAt: "asc" } })).map((row) => target("Task", row.id, `Alice's task "${row.title}"`)),
      target("Conversation", chatId, "Alice's chat"),
      target("Conversation", parseId(a.emptyChat, "id", "Conversation"), "Alice's empty conversation"),
      ...(await db.message.findMany({ where, orderBy: { seq: "asc" } })).map((row) =>
        target("Message", row.id, `Alice's chat's ${row.role} message ${row.seq}${row.toolCalls ? " (with a tool call)" : ""}`),
      ),
      ...(await db.turn.findMany({ where })).map((row) => target("Turn", row.id, "Alice's finished turn")),
      ...(await db.taskEvent.findMany({ where, orderBy: { seq: "asc" } })).map((row) =>
        target("TaskEvent", row.id, `Alice's ${row.actor} ${row.kind} task event`),
      ),
    ];
    // user, assistant step with the tool call, tool result, answer; two tasks created and changed by her, one created by the assistant.
    expect(targets.map((t) => t.type)).toEqual([
      ...["Task", "Task", "Task", "Conversation", "Conversation", "Message", "Message", "Message", "Message", "Turn"],
      ...["TaskEvent", "TaskEvent", "TaskEvent", "TaskEvent", "TaskEvent"],
    ]);

    // Bob's rows from after Alice's: his conversation has more messages than hers.
    await bobTask("bob's newer, pending", false);
    await bobTask("bob's newer, done", true);
    rig.fake.enqueue(textReply("bob's first answer"), textReply("bob's second answer"), textReply("bob's third answer"));
    const bobSent = await send(bob, { content: "bob says hello" });
    expect(bobSent.errors).toBeUndefined();
    b.conversation = bobSent.data!.sendMessage.conversation.id;
    for (const content of ["bob says more", "bob says even more"]) {
      expect((await send(bob, { conversationId: b.conversation, content })).errors).toBeUndefined();
    }
    await ok(bob, CREATE_CONVERSATION, { input: { title: "bob's newest chat" } });

    aliceWs = wsClient(server.wsUrl, alice.token);
    bobWs = wsClient(server.wsUrl, bob.token);
    wsClients.push(aliceWs, bobWs);
    aliceMcp = await mcpConnect(alice);
    bobMcp = await mcpConnect(bob);
    await secrets.refresh();
  });

  afterAll(async () => {
    await Promise.all(mcpClients.map((client) => client.close()));
    await Promise.all(wsClients.map((client) => client.dispose()));
    await rig?.server.close();
    await rig?.fake.close();
  });

  it("should have a case for every root field of the schema, every node type and every tool", async () => {
    for (const root of ROOTS) {
      const type = schema.getType(root) as GraphQLObjectType | undefined;
      expect(type, root).toBeDefined();
      expect(Object.keys(CASES[root]).sort(), `${root} fields without an isolation case`).toEqual(Object.keys(type!.getFields()).sort());
    }
    const node = schema.getType("Node");
    if (!isInterfaceType(node)) throw new Error("the schema has no Node interface");
    const possible = schema
      .getPossibleTypes(node)
      .map((type) => type.name)
      .sort();
    expect(possible).toEqual([...NODE_TYPES].sort());
    expect(new Set(targets.map((t) => t.type))).toEqual(new Set(NODE_TYPES));
    expect(Object.keys(TOOL_ARGS).sort()).toEqual(TOOLS.map((tool) => tool.name).sort());
    const listed = await bobMcp.listTools();
    expect(listed.tools.map((tool) => tool.name).sort()).toEqual(TOOLS.map((tool) => tool.name).sort());
    // The snapshot covers every table that holds a user's rows.
    expect(await userTables(rig.server.db)).toEqual(
      expect.arrayContaining(["tasks", "deleted_tasks", "conversations", "messages", "turns", "task_events"]),
    );
  });

  for (const root of ROOTS) {
    describe(root, () => {
      for (const [field, run] of Object.entries(CASES[root])) {
        it(`should answer ${root}.${field} with Alice's ids exactly as for ids of nothing, and change nothing of hers`, run);
      }
    });
  }

  describe("MCP tools", () => {
    it("should answer every tool with Alice's ids exactly as for ids of nothing, and change nothing of hers", async () => {
      await unchanged("mcp", "MCP tools", async () => {
        for (const [name, tool] of Object.entries(TOOL_ARGS)) {
          if (!tool) continue;
          await each(formsFor(tool.accepts), async (form) => {
            const answer = await mcpAnswer(bobMcp, name, tool.args(form.value));
            const ghost = await ghostOf(`mcp\0${name}`, form, (id) => mcpAnswer(bobMcp, name, tool.args(id)));
            const code = toolCode(toolText(answer));
            ledger.record("mcp", `mcp.${name}`, form.label, judge(visible(answer, form.value), ghost.seen, form.code, code));
          });
        }
        // list_tasks: Bob's tasks only, whatever the status.
        const mine = await bobsIds();
        for (const status of ["all", "pending", "completed"] as const) {
          const answer = await mcpAnswer(bobMcp, "list_tasks", { status });
          const text = visible(answer);
          const ids = ((answer.structuredContent?.tasks ?? []) as { id: string }[]).map((task) => task.id);
          const findings = [
            ...(answer.isError ? [toolText(answer)] : []),
            ...ids.filter((id) => !mine.has(id)).map((id) => `listed ${id}`),
            ...secrets.foundIn(text).map((marker) => `the answer carries Alice's ${marker}`),
          ];
          ledger.record("mcp", "mcp.list_tasks", `status ${status}`, findings);
        }
        // search_tasks for Alice's word: nothing of hers, and a filter-form bulk call touches nothing of hers.
        for (const args of [{ query: WORD }, { query: WORD.slice(0, 10), status: "all" }]) {
          const answer = await mcpAnswer(bobMcp, "search_tasks", args);
          const ids = ((answer.structuredContent?.tasks ?? []) as { id: string }[]).map((task) => task.id);
          const findings = [
            ...(answer.isError ? [toolText(answer)] : []),
            ...ids.map((id) => `listed ${id}`),
            ...secrets.foundIn(visible(answer)).map((marker) => `the answer carries Alice's ${marker}`),
          ];
          ledger.record("mcp", "mcp.search_tasks", `search ${JSON.stringify(args)}`, findings);
        }
        for (const name of ["complete_tasks", "delete_tasks"]) {
          const answer = await mcpAnswer(bobMcp, name, { filter: { query: WORD } });
          const count = (answer.structuredContent as { count?: number } | undefined)?.count;
          ledger.record("mcp", `mcp.${name}`, "a filter of Alice's word", count === 0 ? [] : [`answered ${toolText(answer)}`]);
        }
        // add_task with Alice named as the owner: Bob's task (the arguments cannot choose the user).
        const added = await mcpAnswer(bobMcp, "add_task", { title: "bob via mcp", user_id: alice.id, userId: alice.id, owner: alice.id });
        const id = (added.structuredContent as { id?: string } | undefined)?.id;
        const row = id ? await rig.server.db.task.findUnique({ where: { id: parseId(id, "id", "Task") } }) : null;
        ledger.record("mcp", "mcp.add_task", "Alice's user id as the owner", row?.userId === bob.id ? [] : [`stored ${JSON.stringify(row)}`]);
      });

      // The controls: Alice, over the same transport, with her own ids.
      const call = async (name: string, args: Record<string, unknown>) => {
        const result = (await aliceMcp.callTool({ name, arguments: args })) as CallToolResult;
        expect(result.isError, `${name}: ${toolText(result)}`).toBeFalsy();
        ledger.control(`mcp.${name}`);
        return result.structuredContent as Record<string, any>;
      };
      const added = await call("add_task", { title: `${WORD} via mcp` });
      expect((await call("list_tasks", { status: "all" })).tasks.map((task: { id: string }) => task.id)).toContain(added.id);
      expect((await call("update_task", { task_id: added.id, title: `${WORD} renamed via mcp` })).title).toBe(`${WORD} renamed via mcp`);
      expect((await call("complete_task", { task_id: added.id })).completed).toBe(true);
      expect((await call("search_tasks", { query: `${WORD} renamed` })).tasks.map((task: { id: string }) => task.id)).toContain(added.id);
      expect((await call("complete_tasks", { task_ids: [added.id] })).count).toBe(1);
      expect((await call("delete_tasks", { task_ids: [added.id] })).tasks[0].id).toBe(added.id);
      const again = await call("add_task", { title: `${WORD} again via mcp` });
      expect((await call("delete_task", { task_id: again.id })).deleted.id).toBe(again.id);
      const turn = await aliceAssistantTurn("to be undone over MCP");
      expect((await call("undo_turn", { turn_id: turn.id })).undone_turn_id).toBe(turn.id);
    });
  });

  describe("assistant tools", () => {
    /** The tool results the model got back in its request after the tool step, by call id. */
    function toolResultsIn(request: RecordedRequest): Map<string, string> {
      return new Map(request.body.messages.filter((m) => m.role === "tool").map((m) => [m.tool_call_id ?? "", JSON.stringify(m.content)]));
    }

    it("should answer a model that calls every tool with Alice's ids exactly as for ids of nothing, and change nothing of hers", async () => {
      interface Planned {
        id: string;
        name: string;
        args: Record<string, unknown>;
        form?: IdForm;
        ghostOf?: string;
      }
      const calls: Planned[] = [];
      const ghosts = new Map<string, Planned>();
      let n = 0;
      for (const [name, tool] of Object.entries(TOOL_ARGS)) {
        if (!tool) continue;
        for (const form of formsFor(tool.accepts)) {
          const key = `${name}\0${form.shape}`;
          if (!ghosts.has(key)) {
            const ghost: Planned = { id: `ghost_${n}`, name, args: tool.args(form.ghost), form };
            ghosts.set(key, ghost);
            calls.push(ghost);
          }
          n += 1;
          calls.push({ id: `attack_${n}`, name, args: tool.args(form.value), form, ghostOf: key });
        }
      }
      for (const status of ["all", "pending", "completed"]) calls.push({ id: `list_${status}`, name: "list_tasks", args: { status } });
      calls.push({ id: "add_as_alice", name: "add_task", args: { title: "bob via the assistant", user_id: alice.id, userId: alice.id } });
      // Her word's shared part (the whole word in Bob's own call would read as a leak of it): every one of her tasks matches it.
      calls.push({ id: "search_alice", name: "search_tasks", args: { query: WORD.slice(0, "alice-secret".length) } });

      await unchanged("assistant", "assistant tools", async () => {
        const requestsBefore = rig.fake.requests.length;
        rig.fake.enqueue(
          toolCallReply(
            calls.map(({ id, name, args }) => ({ id, name, args })),
            "I will try Alice's ids.",
          ),
          textReply("bob's tools ran"),
        );
        const response = await send(bob, { conversationId: b.conversation, content: "bob asks about tasks" });
        expect(response.errors, JSON.stringify(response.errors)).toBeUndefined();
        const payload = response.data!.sendMessage;
        const requests = rig.fake.requests.slice(requestsBefore);
        expect(requests).toHaveLength(2);
        const received = toolResultsIn(requests[1]!);
        const inPayload = new Map(payload.toolCalls.map((call) => [call.id, { result: call.result, error: call.error }]));
        const answerOf = (id: string) => ({ payload: inPayload.get(id) ?? "missing", model: received.get(id) ?? "missing" });

        for (const call of calls) {
          if (!call.form || !call.ghostOf) continue;
          const ghost = ghosts.get(call.ghostOf)!;
          const answer = answerOf(call.id);
          const error = inPayload.get(call.id)?.error;
          const code = typeof error === "string" ? toolCode(error) : `no error: ${JSON.stringify(answer)}`;
          const seen = visible(answer, call.form.value);
          const findings = judge(seen, visible(answerOf(ghost.id), sentId(ghost.args) ?? ""), call.form.code, code);
          // What the model reads back is that same error, word for word.
          if (typeof error !== "string" || !received.get(call.id)?.includes(JSON.stringify({ error }).slice(1, -1))) {
            findings.push(`the model got ${received.get(call.id) ?? "nothing"} for the error ${String(error)}`);
          }
          ledger.record("assistant", `assistant.${call.name}`, call.form.label, findings);
        }
        const mine = await bobsIds();
        for (const status of ["all", "pending", "completed"]) {
          const answer = answerOf(`list_${status}`);
          const result = inPayload.get(`list_${status}`)?.result as { tasks?: { id: string }[] } | undefined;
          const findings = [
            ...(result?.tasks ? [] : [`no list: ${JSON.stringify(answer)}`]),
            ...(result?.tasks ?? []).filter((task) => !mine.has(task.id)).map((task) => `listed ${task.id}`),
            ...secrets.foundIn(visible(answer)).map((marker) => `the result carries Alice's ${marker}`),
          ];
          ledger.record("assistant", "assistant.list_tasks", `status ${status}`, findings);
        }
        const searched = inPayload.get("search_alice")?.result as { tasks?: { id: string }[]; total_matched?: number } | undefined;
        ledger.record(
          "assistant",
          "assistant.search_tasks",
          "a search for Alice's word",
          searched?.tasks?.length === 0 && searched.total_matched === 0 ? [] : [`answered ${JSON.stringify(answerOf("search_alice"))}`],
        );
        const added = inPayload.get("add_as_alice")?.result as { id?: string } | undefined;
        const row = added?.id ? await rig.server.db.task.findUnique({ where: { id: parseId(added.id, "id", "Task") } }) : null;
        ledger.record(
          "assistant",
          "assistant.add_task",
          "Alice's user id as the owner",
          row?.userId === bob.id ? [] : [`stored ${JSON.stringify(row)}`],
        );

        // Nothing of Alice's in anything the model was sent for Bob: his history, his tool results.
        const sentIds = calls.flatMap((call) => sentId(call.args) ?? []).concat(alice.id);
        for (const request of requests) {
          const found = secrets.foundIn(visible(request.body, ...sentIds));
          if (found.length > 0) ledger.leaks.push(`assistant: the model was sent Alice's ${found.join(", ")} in Bob's turn`);
        }
      });

      // The control: Alice's model calls every tool with her own ids, and each call works.
      const [toComplete, toUpdate, toDelete, toBulkComplete, toBulkDelete] = [
        await aliceTask("for the assistant to complete"),
        await aliceTask("to rename"),
        await aliceTask("to drop"),
        await aliceTask("to complete in bulk"),
        await aliceTask("to drop in bulk"),
      ];
      const toUndo = await aliceAssistantTurn("for the assistant to undo");
      const controls = [
        { id: "c_add", name: "add_task", args: { title: `${WORD} added in the control` } },
        { id: "c_list", name: "list_tasks", args: { status: "pending" } },
        { id: "c_complete", name: "complete_task", args: { task_id: toComplete } },
        { id: "c_update", name: "update_task", args: { task_id: toUpdate, title: `${WORD} renamed by the assistant` } },
        { id: "c_delete", name: "delete_task", args: { task_id: toDelete } },
        { id: "c_search", name: "search_tasks", args: { query: "rename" } },
        { id: "c_complete_many", name: "complete_tasks", args: { task_ids: [toBulkComplete] } },
        { id: "c_delete_many", name: "delete_tasks", args: { task_ids: [toBulkDelete] } },
        { id: "c_undo", name: "undo_turn", args: { turn_id: toUndo.id } },
      ];
      rig.fake.enqueue(toolCallReply(controls, `${WORD} plan`), textReply(`${WORD} done`));
      const response = await send(alice, { conversationId: a.chat, content: `${WORD} do it all` });
      expect(response.errors).toBeUndefined();
      // Her delete, her bulk calls and her undo wait for her approval (CHAT_APPROVAL=destructive); the others ran.
      const paused = response.data!.sendMessage;
      expect(paused.turn.status).toBe("REQUIRES_ACTION");
      expect(paused.toolCalls.map((call) => call.approval?.status ?? null)).toEqual([
        null,
        null,
        null,
        null,
        "PENDING",
        null,
        "PENDING",
        "PENDING",
        "PENDING",
      ]);
      const approve = ["c_delete", "c_complete_many", "c_delete_many", "c_undo"].map((toolCallId) => ({ toolCallId, approve: true }));
      await ok(alice, DECIDE, { id: paused.turn.id, decisions: approve });
      const turnId = parseId(paused.turn.id, "id", "Turn");
      await vi.waitFor(
        async () => expect((await rig.server.db.turn.findUniqueOrThrow({ where: { id: turnId } })).status, "Alice's approved turn").toBe("COMPLETED"),
        { timeout: 15_000, interval: 20 },
      );
      const done = await ok<{ node: { turnToolCalls: { id: string; error: string | null; result: unknown }[] } }>(alice, NODE, {
        id: paused.turn.id,
      });
      const results = new Map(done.node.turnToolCalls.map((call) => [call.id, call]));
      for (const control of controls) {
        expect(results.get(control.id)?.error ?? null, control.name).toBeNull();
        ledger.control(`assistant.${control.name}`);
      }
      expect(JSON.stringify(results.get("c_list")?.result)).toContain(toUpdate);
      expect(JSON.stringify(results.get("c_search")?.result)).toContain(toUpdate);
    });
  });

  it("should have made every attempt, found no leak, and tried every root field and tool with its control", () => {
    console.log(ledger.summary());
    expect(ledger.leaks).toEqual([]);
    for (const root of ROOTS) {
      for (const field of Object.keys(CASES[root])) {
        expect(ledger.attacksOn.get(`${root}.${field}`) ?? 0, `attacks on ${root}.${field}`).toBeGreaterThan(0);
        expect(ledger.controlsOn.get(`${root}.${field}`) ?? 0, `controls of ${root}.${field}`).toBeGreaterThan(0);
      }
    }
    for (const tool of TOOLS) {
      for (const via of ["mcp", "assistant"]) {
        expect(ledger.attacksOn.get(`${via}.${tool.name}`) ?? 0, `attacks on ${via}.${tool.name}`).toBeGreaterThan(0);
        expect(ledger.controlsOn.get(`${via}.${tool.name}`) ?? 0, `controls of ${via}.${tool.name}`).toBeGreaterThan(0);
      }
    }
    for (const [entry, expected] of Object.entries(EXPECTED_ATTEMPTS)) {
      expect(ledger.attempts.get(entry as EntryPoint), `attempts through ${entry}`).toBeGreaterThanOrEqual(expected);
    }
  });
});
