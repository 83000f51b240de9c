/**
 * The soak's mixed load: reads, task writes and sendMessage, open-loop at a
 * fixed rate (a request starts on schedule whether or not earlier ones have
 * answered, so a slow server cannot slow the load down and hide its latency),
 * spread over many users. Every request is recorded with its outcome; every
 * acknowledged task write is remembered, so the end can check it is still
 * there. A sendMessage that fails with a retryable error is retried with the
 * same clientMessageId, as a client should.
 */
import { setTimeout as sleep } from "node:timers/promises";

export type OpName = "listTasks" | "conversations" | "node" | "addTask" | "updateTask" | "completeTask" | "deleteTask" | "sendMessage";
export type OpKind = "read" | "write" | "chat";

export const OP_KIND: Record<OpName, OpKind> = {
  listTasks: "read",
  conversations: "read",
  node: "read",
  addTask: "write",
  updateTask: "write",
  completeTask: "write",
  deleteTask: "write",
  sendMessage: "chat",
};

/** Relative weights of the mix. A write with no task to act on becomes addTask; a send while the user's last one runs becomes listTasks. */
const MIX: [OpName, number][] = [
  ["listTasks", 28],
  ["conversations", 8],
  ["node", 7],
  ["addTask", 20],
  ["updateTask", 12],
  ["completeTask", 7],
  ["deleteTask", 6],
  ["sendMessage", 12],
];

export interface RequestRecord {
  op: OpName;
  /** ms since the soak's start. */
  start: number;
  end: number;
  ok: boolean;
  /** The error code (GraphQL extensions.code, else HTTP status or network error) when not ok. */
  code?: string;
  /** A sendMessage retried with the clientMessageId of a failed one. */
  retry?: boolean;
}

export interface TaskState {
  title: string;
  description: string | null;
  completed: boolean;
  updatedAt: string;
}

/** What the soak last heard about a task it wrote: its state or its deletion; uncertain after a write whose outcome is unknown. */
export interface AckedTask {
  user: number;
  state: TaskState | "deleted";
  certain: boolean;
}

export interface SoakUser {
  id: string;
  token: string;
}

interface UserState {
  /** Tasks no request is acting on, that may be picked. */
  idle: Set<string>;
  conversationId: string | undefined;
  chatting: boolean;
}

const TASK_FIELDS = "id title description completed updatedAt";
const DOCS: Record<Exclude<OpName, "sendMessage">, string> = {
  listTasks: "query { tasks(first: 20) { edges { node { id title completed } } } }",
  conversations: "query { conversations(first: 3) { edges { node { id title messages(last: 4) { edges { node { id role content } } } } } } }",
  node: "query ($id: ID!) { node(id: $id) { id ... on Task { title completed } } }",
  addTask: `mutation ($input: AddTaskInput!) { addTask(input: $input) { ${TASK_FIELDS} } }`,
  updateTask: `mutation ($input: UpdateTaskInput!) { updateTask(input: $input) { ${TASK_FIELDS} } }`,
  completeTask: `mutation ($id: ID!) { completeTask(id: $id) { ${TASK_FIELDS} } }`,
  deleteTask: "mutation ($id: ID!) { deleteTask(id: $id) { id } }",
};
const SEND = `mutation ($input: SendMessageInput!) {
  sendMessage(input: $input) { conversation { id } userMessage { id } reply { id } turn { status } }
}`;

interface Answer {
  ok: boolean;
  code?: string;
  retryable: boolean;
  data?: Record<string, any>;
}

export interface LoadOptions {
  port: number;
  users: SoakUser[];
  /** Requests started per second. */
  rate: number;
  /** performance.now() of the soak's start. */
  t0: number;
  /** Requests open at once beyond which a scheduled one is skipped (and counted), so an outage cannot pile up without bound. */
  maxInFlight?: number;
  /** How long a request may take before the client gives up. */
  requestTimeoutMs?: number;
}

export class Load {
  readonly records: RequestRecord[] = [];
  readonly acked = new Map<string, AckedTask>();
  /** Every clientMessageId whose sendMessage was acknowledged, with its user message id. */
  readonly sentMessages = new Map<string, { user: number; userMessageId: string }>();
  skipped = 0;
  private inFlight = 0;
  private readonly states: UserState[];
  private readonly pending = new Set<Promise<void>>();
  private sequence = 0;
  private random = mulberry32(0x50a1c);
  private stopped = false;

  constructor(private readonly options: LoadOptions) {
    this.states = options.users.map(() => ({ idle: new Set(), conversationId: undefined, chatting: false }));
  }

  get open(): number {
    return this.inFlight;
  }

  /** Starts requests on schedule until `until` (performance.now()). */
  async run(until: number): Promise<void> {
    const interval = 1000 / this.options.rate;
    let next = performance.now();
    while (!this.stopped && next < until) {
      const wait = next - performance.now();
      if (wait > 0) await sleep(wait);
      next += interval;
      if (this.inFlight >= (this.options.maxInFlight ?? 500)) {
        this.skipped += 1;
        continue;
      }
      this.track(this.one());
    }
  }

  /** Resolves once every request (and every sendMessage retry) has ended. */
  async settle(): Promise<void> {
    while (this.pending.size > 0) await Promise.allSettled([...this.pending]);
  }

  stop(): void {
    this.stopped = true;
  }

  private track(work: Promise<void>): void {
    this.pending.add(work);
    void work.finally(() => this.pending.delete(work));
  }

  private pick(): OpName {
    const total = MIX.reduce((sum, [, weight]) => sum + weight, 0);
    let roll = this.random() * total;
    for (const [op, weight] of MIX) {
      roll -= weight;
      if (roll < 0) return op;
    }
    return "listTasks";
  }

  private async one(): Promise<void> {
    const userIndex = Math.floor(this.random() * this.options.users.length);
    const state = this.states[userIndex]!;
    let op = this.pick();
    if ((op === "updateTask" || op === "completeTask" || op === "deleteTask") && state.idle.size === 0) op = "addTask";
    if (op === "node" && state.idle.size === 0) op = "listTasks";
    if (op === "sendMessage" && state.chatting) op = "listTasks";
    if (op === "sendMessage") return this.chat(userIndex);

    this.sequence += 1;
    const n = this.sequence;
    let taskId: string | undefined;
    let variables: Record<string, unknown> = {};
    if (op === "addTask") {
      variables = { input: { title: `soak task ${n}`, description: n % 3 === 0 ? `made by request ${n}` : undefined } };
    } else if (op !== "listTasks" && op !== "conversations") {
      taskId = this.takeTask(state);
      if (op === "updateTask") variables = { input: { id: taskId, title: `soak task renamed ${n}` } };
      else variables = { id: taskId };
    }
    if (op === "node") {
      // A read: the task goes back once it is answered, whatever the answer.
      await this.request(op, DOCS.node, variables, userIndex);
      state.idle.add(taskId!);
      return;
    }
    const answer = await this.request(op, DOCS[op], variables, userIndex);
    if (OP_KIND[op] !== "write") return;
    if (answer.ok) {
      if (op === "deleteTask") {
        this.acked.set(taskId!, { user: userIndex, state: "deleted", certain: true });
        return;
      }
      const task = answer.data?.[op] as { id: string } & TaskState;
      this.acked.set(task.id, {
        user: userIndex,
        state: { title: task.title, description: task.description, completed: task.completed, updatedAt: task.updatedAt },
        certain: true,
      });
      state.idle.add(task.id);
      return;
    }
    // Failed: it may or may not have committed. The task is not touched again, and not checked.
    const known = taskId === undefined ? undefined : this.acked.get(taskId);
    if (known) known.certain = false;
  }

  private takeTask(state: UserState): string {
    const ids = [...state.idle];
    const id = ids[Math.floor(this.random() * ids.length)]!;
    state.idle.delete(id);
    return id;
  }

  /** One sendMessage, retried with its clientMessageId while the answer is retryable (for up to a minute). */
  private async chat(userIndex: number): Promise<void> {
    const state = this.states[userIndex]!;
    state.chatting = true;
    this.sequence += 1;
    const clientMessageId = `soak-${process.pid}-${this.sequence}`;
    const input = { content: `Please add: soak chat task ${this.sequence}`, conversationId: state.conversationId, clientMessageId };
    try {
      const giveUpAt = performance.now() + 60_000;
      for (let attempt = 0; ; attempt += 1) {
        const answer = await this.request("sendMessage", SEND, { input }, userIndex, attempt > 0);
        if (answer.ok) {
          const payload = answer.data?.sendMessage as { conversation: { id: string }; userMessage: { id: string } };
          state.conversationId ??= payload.conversation.id;
          this.sentMessages.set(clientMessageId, { user: userIndex, userMessageId: payload.userMessage.id });
          return;
        }
        if (!answer.retryable || performance.now() > giveUpAt) return;
        await sleep(1000);
      }
    } finally {
      state.chatting = false;
    }
  }

  private async request(op: OpName, query: string, variables: Record<string, unknown>, userIndex: number, retry = false): Promise<Answer> {
    const user = this.options.users[userIndex]!;
    const start = performance.now() - this.options.t0;
    this.inFlight += 1;
    let answer: Answer;
    try {
      answer = await post(this.options.port, user.token, query, variables, this.options.requestTimeoutMs ?? 60_000);
    } finally {
      this.inFlight -= 1;
    }
    this.records.push({
      op,
      start,
      end: performance.now() - this.options.t0,
      ok: answer.ok,
      ...(answer.code === undefined ? {} : { code: answer.code }),
      ...(retry ? { retry } : {}),
    });
    return answer;
  }
}

async function post(port: number, token: string, query: string, variables: Record<string, unknown>, timeoutMs: number): Promise<Answer> {
  try {
    const response = await fetch(`http://127.0.0.1:${port}/graphql`, {
      method: "POST",
      headers: { "content-type": "application/json", accept: "application/graphql-response+json", authorization: `Bearer ${token}` },
      body: JSON.stringify({ query, variables }),
      signal: AbortSignal.timeout(timeoutMs),
    });
    const body = (await response.json()) as { data?: Record<string, any>; errors?: { extensions?: { code?: string; retryable?: boolean } }[] };
    const error = body.errors?.[0];
    if (response.status === 200 && error === undefined) return { ok: true, retryable: false, data: body.data ?? {} };
    const code = error?.extensions?.code ?? `HTTP_${response.status}`;
    return { ok: false, code, retryable: error?.extensions?.retryable === true || code === "SERVICE_UNAVAILABLE" };
  } catch (error) {
    const cause = (error as { cause?: { code?: string } }).cause?.code;
    return { ok: false, code: cause ?? (error as Error).name, retryable: true };
  }
}

/** A small seeded generator: the same mix on every run. */
function mulberry32(seed: number): () => number {
  let a = seed;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
