import { Client, fetchExchange, subscriptionExchange, type OperationResult } from "@urql/core";
import { createClient as createWsClient, type Client as WsClient } from "graphql-ws";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { WebSocket } from "ws";
import { newUser, startTestServer, type TestServer, type TestUser } from "../helpers/server.js";
import {
  ADD_TASK,
  appendVia,
  CONVERSATION_CHANGED,
  DELETE_TASK,
  MESSAGE_ADDED,
  newConversation,
  TASK_CHANGED,
  within,
  type TaskView,
} from "./support.js";

/** An urql client as an app would set it up: HTTP for queries and mutations, graphql-ws for subscriptions. */
function urqlFor(server: TestServer, user: TestUser): { client: Client; ws: WsClient } {
  const authorization = `Bearer ${user.token}`;
  const ws = createWsClient({
    url: server.wsUrl,
    webSocketImpl: WebSocket,
    retryAttempts: 0,
    connectionParams: { authorization },
  });
  const client = new Client({
    url: server.url,
    fetchOptions: () => ({ headers: { authorization } }),
    requestPolicy: "network-only",
    exchanges: [
      fetchExchange,
      subscriptionExchange({
        forwardSubscription(request) {
          const input = { ...request, query: request.query ?? "" };
          return {
            subscribe(sink) {
              const unsubscribe = ws.subscribe(input, sink);
              return { unsubscribe };
            },
          };
        },
      }),
    ],
  });
  return { client, ws };
}

/** Collects an urql subscription's results and hands them out in order. */
function collect(source: { subscribe(onResult: (result: OperationResult) => void): { unsubscribe(): void } }) {
  const results: OperationResult[] = [];
  const waiters: ((result: OperationResult) => void)[] = [];
  const subscription = source.subscribe((result) => {
    const waiter = waiters.shift();
    if (waiter) waiter(result);
    else results.push(result);
  });
  return {
    next: (what: string) => {
      const queued = results.shift();
      if (queued) return Promise.resolve(queued);
      return within(new Promise<OperationResult>((resolve) => waiters.push(resolve)), 10_000, what);
    },
    pending: () => [...results],
    unsubscribe: () => subscription.unsubscribe(),
  };
}

describe("subscriptions through urql", () => {
  let server: TestServer;
  const wsClients: WsClient[] = [];

  beforeAll(async () => {
    server = await startTestServer();
  });
  afterAll(async () => {
    await Promise.all(wsClients.map((ws) => ws.dispose()));
    await server.close();
  });

  it("should receive taskChanged and messageAdded through subscriptionExchange while mutating through fetchExchange", async () => {
    const user = await newUser(server);
    const conversation = await newConversation(server.db, user.id);
    const { client, ws } = urqlFor(server, user);
    wsClients.push(ws);

    const before = server.app.realtime.establishedCount;
    const tasks = collect(client.subscription(TASK_CHANGED, {}));
    const messages = collect(client.subscription(MESSAGE_ADDED, { conversationId: conversation.globalId }));
    await vi.waitFor(() => expect(server.app.realtime.establishedCount, "established subscriptions").toBeGreaterThanOrEqual(before + 2), {
      timeout: 10_000,
      interval: 10,
    });

    const added = await client.mutation<{ addTask: TaskView }>(ADD_TASK, { title: "Through urql" }).toPromise();
    expect(added.error).toBeUndefined();
    const task = added.data!.addTask;
    const created = await tasks.next("taskChanged CREATED");
    expect(created.error).toBeUndefined();
    expect(created.data).toMatchObject({ taskChanged: { kind: "CREATED", taskId: task.id, task: { id: task.id, title: "Through urql" } } });

    const deleted = await client.mutation<{ deleteTask: TaskView }>(DELETE_TASK, { id: task.id }).toPromise();
    expect(deleted.error).toBeUndefined();
    expect((await tasks.next("taskChanged DELETED")).data).toMatchObject({
      taskChanged: { kind: "DELETED", taskId: task.id, task: { title: "Through urql" } },
    });

    await appendVia(server.db, user.id, conversation.id, ["hi from urql"]);
    const message = await messages.next("messageAdded");
    expect(message.error).toBeUndefined();
    expect(message.data).toMatchObject({
      messageAdded: { seq: 1, role: "USER", content: "hi from urql", conversation: { id: conversation.globalId } },
    });
    expect(tasks.pending()).toEqual([]);
    expect(messages.pending()).toEqual([]);
    tasks.unsubscribe();
    messages.unsubscribe();
  });

  it("should receive conversationChanged through subscriptionExchange: created, renamed and deleted through fetchExchange", async () => {
    const user = await newUser(server);
    const { client, ws } = urqlFor(server, user);
    wsClients.push(ws);
    const before = server.app.realtime.establishedCount;
    const changes = collect(client.subscription(CONVERSATION_CHANGED, {}));
    await vi.waitFor(() => expect(server.app.realtime.establishedCount, "established subscriptions").toBeGreaterThan(before), {
      timeout: 10_000,
      interval: 10,
    });

    const created = await client.mutation(`mutation { createConversation(input: { title: "Through urql" }) { id } }`, {}).toPromise();
    expect(created.error).toBeUndefined();
    const id = created.data.createConversation.id as string;
    expect((await changes.next("CREATED")).data).toMatchObject({
      conversationChanged: { kind: "CREATED", conversationId: id, conversation: { id, title: "Through urql" } },
    });
    const renamed = await client
      .mutation(`mutation Rename($id: ID!) { updateConversation(input: { id: $id, title: "Renamed through urql" }) { id } }`, { id })
      .toPromise();
    expect(renamed.error).toBeUndefined();
    expect((await changes.next("UPDATED")).data).toMatchObject({
      conversationChanged: { kind: "UPDATED", conversation: { title: "Renamed through urql" } },
    });
    const deleted = await client.mutation(`mutation Delete($id: ID!) { deleteConversation(id: $id) }`, { id }).toPromise();
    expect(deleted.error).toBeUndefined();
    expect((await changes.next("DELETED")).data).toMatchObject({ conversationChanged: { kind: "DELETED", conversationId: id, conversation: null } });
    expect(changes.pending()).toEqual([]);
    changes.unsubscribe();
  });

  it("should surface a subscription error as a CombinedError with its code", async () => {
    const owner = await newUser(server, "owner");
    const intruder = await newUser(server, "intruder");
    const conversation = await newConversation(server.db, owner.id);
    const { client, ws } = urqlFor(server, intruder);
    wsClients.push(ws);
    const messages = collect(client.subscription(MESSAGE_ADDED, { conversationId: conversation.globalId }));
    const result = await messages.next("the error");
    expect(result.error?.graphQLErrors.map((error) => error.extensions.code)).toEqual(["NOT_FOUND"]);
    messages.unsubscribe();
  });
});
