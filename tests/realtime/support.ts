import { once } from "node:events";
import pg from "pg";
import { expect, vi } from "vitest";
import { createConversation } from "../../src/domain/conversations.js";
import { appendMessages, type NewMessage } from "../../src/domain/messages.js";
import type { Db } from "../../src/db/client.js";
import { toGlobalId } from "../../src/lib/ids.js";
import { startTestServer, type TestServer } from "../helpers/server.js";
import type { TcpGate } from "../helpers/tcp-gate.js";
import { wsClient, type QueuedSubscription, type TestWsClient } from "../helpers/ws-client.js";

/** Shared documents and helpers of the realtime tests. */

export const TASK_CHANGED = /* GraphQL */ `
  subscription {
    taskChanged {
      kind
      taskId
      task {
        id
        title
        description
        completed
        updatedAt
      }
    }
  }
`;

export const MESSAGE_ADDED = /* GraphQL */ `
  subscription MessageAdded($conversationId: ID, $afterSeq: Int) {
    messageAdded(conversationId: $conversationId, afterSeq: $afterSeq) {
      id
      seq
      role
      content
      toolCallId
      conversation {
        id
      }
    }
  }
`;

export const ADD_TASK = /* GraphQL */ `
  mutation AddTask($title: String!, $description: String) {
    addTask(input: { title: $title, description: $description }) {
      id
      title
      description
      completed
      updatedAt
    }
  }
`;

export const UPDATE_TASK = /* GraphQL */ `
  mutation UpdateTask($input: UpdateTaskInput!) {
    updateTask(input: $input) {
      id
      title
      description
      completed
      updatedAt
    }
  }
`;

export const COMPLETE_TASK = /* GraphQL */ `
  mutation CompleteTask($id: ID!) {
    completeTask(id: $id) {
      id
      title
      description
      completed
      updatedAt
    }
  }
`;

export const DELETE_TASK = /* GraphQL */ `
  mutation DeleteTask($id: ID!) {
    deleteTask(id: $id) {
      id
      title
      description
      completed
      updatedAt
    }
  }
`;

export interface TaskView {
  id: string;
  title: string;
  description: string | null;
  completed: boolean;
  updatedAt: string;
}

export interface TaskChangeView {
  kind: "CREATED" | "UPDATED" | "DELETED";
  taskId: string;
  task: TaskView | null;
}

export interface MessageView {
  id: string;
  seq: number;
  role: "USER" | "ASSISTANT" | "TOOL";
  content: string;
  toolCallId: string | null;
  conversation: { id: string };
}

/** A test server that opens graphql-ws clients to itself: close() disposes every one of them, then closes the server. */
export interface LiveServer extends TestServer {
  /** A graphql-ws client of this server with `token` as the bearer (undefined: none), disposed by close(). */
  connect(token: string | undefined): TestWsClient;
}

export async function startLiveServer(options: Parameters<typeof startTestServer>[0] = {}): Promise<LiveServer> {
  const server = await startTestServer(options);
  const clients: TestWsClient[] = [];
  return {
    ...server,
    connect(token) {
      const client = wsClient(server.wsUrl, token);
      clients.push(client);
      return client;
    },
    async close() {
      await Promise.all(clients.map((client) => client.dispose()));
      await server.close();
    },
  };
}

/** Subscribes and resolves once the server has the subscription's LISTEN (and starting point) in place. */
export async function live<T = Record<string, any>>(
  server: TestServer,
  client: TestWsClient,
  query: string,
  variables?: Record<string, unknown>,
): Promise<QueuedSubscription<T>> {
  const before = server.app.realtime.establishedCount;
  const sub = client.subscribe<T>(query, variables);
  await vi.waitFor(() => expect(server.app.realtime.establishedCount, "established subscriptions").toBeGreaterThan(before), {
    timeout: 10_000,
    interval: 10,
  });
  return sub;
}

/** The next event of a taskChanged subscription; fails on an error result. */
export async function nextTaskChange(sub: QueuedSubscription, timeoutMs?: number): Promise<TaskChangeView> {
  const result = await sub.next(timeoutMs);
  if (result.errors) throw new Error(`taskChanged errored: ${JSON.stringify(result.errors)}`);
  return result.data?.taskChanged as TaskChangeView;
}

/** The next message of a messageAdded subscription; fails on an error result. */
export async function nextMessage(sub: QueuedSubscription, timeoutMs?: number): Promise<MessageView> {
  const result = await sub.next(timeoutMs);
  if (result.errors) throw new Error(`messageAdded errored: ${JSON.stringify(result.errors)}`);
  return result.data?.messageAdded as MessageView;
}

/** Messages of a subscription until (and including) the one with `lastSeq`. */
export async function messagesUntil(sub: QueuedSubscription, lastSeq: number, timeoutMs?: number): Promise<MessageView[]> {
  const received: MessageView[] = [];
  for (;;) {
    const message = await nextMessage(sub, timeoutMs);
    received.push(message);
    if (message.seq >= lastSeq) return received;
  }
}

export function range(from: number, to: number): number[] {
  return Array.from({ length: to - from + 1 }, (_, index) => from + index);
}

/** "pending", "resolved" or "rejected", without waiting: a settled promise wins the race against a resolved one. */
export async function promiseState(promise: Promise<unknown>): Promise<"pending" | "resolved" | "rejected"> {
  const pending = {};
  return Promise.race([promise, Promise.resolve(pending)]).then(
    (value) => (value === pending ? "pending" : "resolved"),
    () => "rejected",
  );
}

/** A conversation of the user, with its raw and global id. */
export async function newConversation(db: Db, userId: string, title = "Realtime"): Promise<{ id: string; globalId: string }> {
  const conversation = await createConversation(db, userId, { title });
  return { id: conversation.id, globalId: toGlobalId("Conversation", conversation.id) };
}

/** Appends messages through the domain, in one transaction; returns them in seq order. */
export function appendVia(db: Db, userId: string, conversationId: string, contents: readonly string[], role: NewMessage["role"] = "user") {
  return db.$transaction((tx) =>
    appendMessages(
      tx,
      userId,
      conversationId,
      contents.map((content) => ({ role, content })),
    ),
  );
}

/**
 * Inserts a turn as SQL would, holding its conversation's lease for an hour: a RUNNING turn without a
 * live lease is a dead instance's, and any test server starting meanwhile (in another file) would mark
 * it interrupted, a change the test did not make.
 */
export async function insertTurn(
  client: pg.Client,
  turn: { userId: string; conversationId: string; userMessageId: string; status?: string },
): Promise<string> {
  const { rows } = await client.query<{ id: string }>(
    `WITH lease AS (
       UPDATE conversations SET turn_lease_id = gen_random_uuid(), turn_lease_expires_at = now() + interval '1 hour'
       WHERE id = $2 RETURNING turn_lease_id
     )
     INSERT INTO turns (user_id, conversation_id, user_message_id, status, lease_id)
     SELECT $1, $2, $3, $4::turn_status, turn_lease_id FROM lease RETURNING id`,
    [turn.userId, turn.conversationId, turn.userMessageId, turn.status ?? "RUNNING"],
  );
  if (rows[0] === undefined) throw new Error(`no conversation ${turn.conversationId} to start a turn in`);
  return rows[0].id;
}

/** Resolves with the next `name` event of the emitter (registered now, so call it before causing the event). */
export function nextEvent(emitter: NodeJS.EventEmitter, name: string, timeoutMs = 15_000): Promise<unknown[]> {
  return once(emitter, name, { signal: AbortSignal.timeout(timeoutMs) });
}

/**
 * Terminates the listener backend(s) behind the gate with pg_terminate_backend
 * and returns their pids. Fails unless exactly `expected` are found.
 */
export async function killListenersBehind(admin: pg.Client, gate: TcpGate, expected = 1): Promise<number[]> {
  const ports = gate.upstreamPorts();
  const { rows } = await admin.query<{ pid: number; killed: boolean }>(
    `SELECT pid, pg_terminate_backend(pid) AS killed
       FROM pg_stat_activity
      WHERE application_name = 'todo-api-listener' AND datname = current_database() AND client_port = ANY($1::int[])`,
    [ports],
  );
  if (rows.length !== expected || rows.some((row) => !row.killed)) {
    throw new Error(`expected to kill ${expected} listener(s) behind the gate, found ${JSON.stringify(rows)} (ports ${ports.join(",")})`);
  }
  const pids = rows.map((row) => row.pid);
  // pg_terminate_backend only signals: wait until the backends are gone, so later lookups see only live ones.
  await vi.waitFor(
    async () => {
      const { rows: left } = await admin.query<{ n: number }>(`SELECT count(*)::int AS n FROM pg_stat_activity WHERE pid = ANY($1::int[])`, [pids]);
      expect(left[0]?.n, "killed listener backends still in pg_stat_activity").toBe(0);
    },
    { timeout: 15_000, interval: 10 },
  );
  return pids;
}

/**
 * Once the server's listener is connected: shuts the gate, kills the listener
 * backend behind it and resolves, with its pid, when the listener has noticed.
 * The gate stays shut, so the listener stays down until it is opened.
 */
export async function killListener(server: TestServer, gate: TcpGate, admin: pg.Client): Promise<number[]> {
  await vi.waitFor(() => expect(server.app.transport.connected, "the listener is connected").toBe(true), { timeout: 15_000, interval: 10 });
  gate.shut();
  const down = nextEvent(server.app.transport, "down");
  const killed = await killListenersBehind(admin, gate);
  await down;
  return killed;
}

/** The pids of the listener backends behind the gate (those relayed through it, by client port). */
export async function listenerPidsBehind(admin: pg.Client, gate: TcpGate): Promise<number[]> {
  const { rows } = await admin.query<{ pid: number }>(
    `SELECT pid FROM pg_stat_activity
      WHERE application_name = 'todo-api-listener' AND datname = current_database() AND client_port = ANY($1::int[])`,
    [gate.upstreamPorts()],
  );
  return rows.map((row) => row.pid);
}

export async function adminClient(databaseUrl: string): Promise<pg.Client> {
  const client = new pg.Client({ connectionString: databaseUrl, application_name: "todo-realtime-tests" });
  await client.connect();
  return client;
}

/**
 * Reads a text/event-stream response into GraphQL results: each `event: next`
 * with its JSON `data`, and whether `event: complete` arrived.
 */
export interface SseReader {
  next(timeoutMs?: number): Promise<{ data?: Record<string, any> | null; errors?: { message: string; extensions?: Record<string, any> }[] }>;
  /** Resolves when the stream ends (complete event or end of body). */
  ended: Promise<void>;
  /** Whether an `event: complete` arrived. */
  completed(): boolean;
  cancel(): Promise<void>;
}

export function readSse(response: Response): SseReader {
  if (!response.body) throw new Error("the SSE response has no body");
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  const results: Record<string, any>[] = [];
  const waiters: ((value: Record<string, any>) => void)[] = [];
  let buffer = "";
  let completed = false;
  let finish: () => void = () => {};
  const ended = new Promise<void>((resolve) => (finish = resolve));

  const deliver = (value: Record<string, any>) => {
    const waiter = waiters.shift();
    if (waiter) waiter(value);
    else results.push(value);
  };

  void (async () => {
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += value;
        let boundary = buffer.indexOf("\n\n");
        while (boundary !== -1) {
          const block = buffer.slice(0, boundary);
          buffer = buffer.slice(boundary + 2);
          boundary = buffer.indexOf("\n\n");
          let event = "message";
          const data: string[] = [];
          for (const line of block.split("\n")) {
            if (line.startsWith("event:")) event = line.slice(6).trim();
            else if (line.startsWith("data:")) data.push(line.slice(5).trimStart());
          }
          if (event === "complete") {
            completed = true;
            finish();
          } else if (data.length > 0) {
            deliver(JSON.parse(data.join("\n")) as Record<string, any>);
          }
        }
      }
    } catch {
      // Cancelled or reset: the stream is over either way.
    } finally {
      finish();
    }
  })();

  return {
    next: (timeoutMs = 10_000) => {
      const queued = results.shift();
      if (queued) return Promise.resolve(queued);
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no SSE event within ${timeoutMs} ms`)), timeoutMs);
        waiters.push((value) => {
          clearTimeout(timer);
          resolve(value);
        });
      });
    },
    ended,
    completed: () => completed,
    cancel: async () => {
      await reader.cancel().catch(() => {});
    },
  };
}

/** The promise's outcome, or a rejection naming `what` after `ms` (the timer is cleared either way). */
export async function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      promise,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`${what}: nothing within ${ms} ms`)), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

export const CONVERSATION_CHANGED = /* GraphQL */ `
  subscription {
    conversationChanged {
      kind
      conversationId
      conversation {
        id
        title
        updatedAt
      }
    }
  }
`;

export interface ConversationChangeView {
  kind: "CREATED" | "UPDATED" | "DELETED";
  conversationId: string;
  conversation: { id: string; title: string | null; updatedAt: string } | null;
}

/** The next event of a conversationChanged subscription; fails on an error result. */
export async function nextConversationChange(sub: QueuedSubscription, timeoutMs?: number): Promise<ConversationChangeView> {
  const result = await sub.next(timeoutMs);
  if (result.errors) throw new Error(`conversationChanged errored: ${JSON.stringify(result.errors)}`);
  return result.data?.conversationChanged as ConversationChangeView;
}
