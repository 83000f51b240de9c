/**
 * The soak's subscribers and the check of what they received against what
 * the database committed, by exact sets:
 *
 * - taskChanged promises the latest committed state of every task changed
 *   after the subscriber started (intermediate states may be coalesced: the
 *   feed re-reads rows, src/realtime/task-feed.ts). So for every task of the
 *   user, live or deleted, the last event a subscriber got for it must be its
 *   final state (title, description, completed, updatedAt; DELETED with the
 *   tombstone's for a deleted one); no state may arrive twice.
 * - messageAdded promises every settled message once, in seq order per
 *   conversation (src/realtime/message-feed.ts). So each subscriber's set of
 *   message ids must equal the settled prefix of each of the user's
 *   conversations, with no id twice and seqs rising.
 *
 * Every subscriber is established before the load starts, so everything the
 * load commits is owed to it. An event for something of another user is
 * counted as foreign (a leak).
 */
import pg from "pg";
import type { WebSocket } from "ws";
import { toGlobalId } from "../src/lib/ids.js";
import { openSubscriber } from "./ws-subscriber.js";
import type { SoakUser } from "./soak-load.js";

export const TASK_SUBSCRIPTION = "subscription { taskChanged { kind taskId task { id title description completed updatedAt } } }";
export const MESSAGE_SUBSCRIPTION = "subscription { messageAdded { id seq status } }";

type Feed = "task" | "message";

interface Watcher {
  feed: Feed;
  user: number;
  socket: WebSocket | undefined;
  received: number;
  /** Task: the key of the last state per task id. */
  lastState: Map<string, string>;
  /** Task: every state key received; message: every message id received; with when (ms since the load started). */
  seen: Map<string, number>;
  duplicates: number;
  /** Message ids in arrival order (for the order check). */
  order: string[];
  /** error or complete messages, and closes, that ended the subscription early. */
  ended: string[];
}

export interface FeedVerdict {
  subscribers: number;
  received: number;
  /** Owed (subscriber × task final state, or subscriber × message) in all. */
  expected: number;
  lost: number;
  duplicates: number;
  /** Events about another user's rows. */
  foreign: number;
  /** Message feed: seqs not rising within a conversation. */
  outOfOrder: number;
  /** Subscriptions the server ended (error, complete, close) before the end. */
  endedEarly: number;
}

export interface EventsVerdict {
  task: FeedVerdict;
  message: FeedVerdict;
  /** Messages still STREAMING at the end: not owed yet (they and what follows them in their conversation). */
  unsettledMessages: number;
  tasksCommitted: { live: number; deleted: number };
  messagesCommitted: number;
}

/** The key of one task state, as events carry it and as the database has it. */
function stateKey(deleted: boolean, task: { updatedAt: string; title: string; description: string | null; completed: boolean }): string {
  return JSON.stringify([deleted ? "d" : "l", task.updatedAt, task.title, task.description ?? null, task.completed]);
}

export class Subscribers {
  private readonly watchers: Watcher[] = [];
  /** The first few duplicates, for the report: what arrived twice and when (ms since the load started). */
  readonly duplicateExamples: string[] = [];
  /** ms since the load started (set when it starts). */
  clock: () => number = () => 0;

  constructor(private readonly users: SoakUser[]) {}

  get count(): number {
    return this.watchers.length;
  }

  get received(): number {
    return this.watchers.reduce((sum, watcher) => sum + watcher.received, 0);
  }

  /** Opens `count` sockets, alternating the two feeds across the users, `batch` at a time. */
  async open(port: number, count: number, batch = 50): Promise<void> {
    for (let start = 0; start < count; start += batch) {
      const opening: Promise<void>[] = [];
      for (let index = start; index < Math.min(count, start + batch); index += 1) {
        const user = index % this.users.length;
        // Round r of the users: even rounds taskChanged, odd rounds messageAdded.
        const feed: Feed = Math.floor(index / this.users.length) % 2 === 0 ? "task" : "message";
        opening.push(this.openOne(port, user, feed));
      }
      await Promise.all(opening);
    }
  }

  close(): void {
    for (const watcher of this.watchers) watcher.socket?.terminate();
  }

  private async openOne(port: number, user: number, feed: Feed): Promise<void> {
    const watcher: Watcher = {
      feed,
      user,
      socket: undefined,
      received: 0,
      lastState: new Map(),
      seen: new Map(),
      duplicates: 0,
      order: [],
      ended: [],
    };
    this.watchers.push(watcher);
    const subscriber = await openSubscriber({
      port,
      token: this.users[user]!.token,
      query: feed === "task" ? TASK_SUBSCRIPTION : MESSAGE_SUBSCRIPTION,
      onMessage: (text) => this.onMessage(watcher, text),
    });
    watcher.socket = subscriber.socket;
    void subscriber.closed.then((code) => watcher.ended.push(`closed ${code}`));
  }

  private onMessage(watcher: Watcher, text: string): void {
    const message = JSON.parse(text) as { type: string; payload?: any };
    if (message.type === "ping") {
      watcher.socket?.send(JSON.stringify({ type: "pong" }));
      return;
    }
    if (message.type !== "next") {
      watcher.ended.push(`${message.type} ${JSON.stringify(message.payload ?? null).slice(0, 200)}`);
      return;
    }
    const data = message.payload?.data;
    if (!data) {
      watcher.ended.push(`next without data ${JSON.stringify(message.payload?.errors ?? null).slice(0, 200)}`);
      return;
    }
    watcher.received += 1;
    if (watcher.feed === "task") {
      const event = data.taskChanged as {
        kind: string;
        taskId: string;
        task: { updatedAt: string; title: string; description: string | null; completed: boolean };
      };
      const key = `${event.taskId}|${stateKey(event.kind === "DELETED", event.task)}`;
      this.see(watcher, key, event.kind);
      watcher.lastState.set(event.taskId, key);
    } else {
      const id = (data.messageAdded as { id: string }).id;
      this.see(watcher, id, "message");
      watcher.order.push(id);
    }
  }

  private see(watcher: Watcher, key: string, what: string): void {
    const now = Math.round(this.clock());
    const first = watcher.seen.get(key);
    if (first === undefined) {
      watcher.seen.set(key, now);
      return;
    }
    watcher.duplicates += 1;
    if (this.duplicateExamples.length < 8) {
      this.duplicateExamples.push(`${watcher.feed} subscriber of user ${watcher.user}: ${what} ${key} at ${first} ms and again at ${now} ms`);
    }
  }

  /** Compares what every subscriber got with the database's rows for the soak's users. */
  async verify(databaseUrl: string): Promise<EventsVerdict> {
    const ids = this.users.map((user) => user.id);
    const userIndex = new Map(ids.map((id, index) => [id, index]));
    const sql = new pg.Client({ connectionString: databaseUrl });
    sql.on("error", () => {});
    await sql.connect();
    try {
      const iso = (value: Date) => value.toISOString();
      type TaskRow = { id: string; user_id: string; title: string; description: string | null; completed: boolean; updated_at: Date };
      const live = await sql.query<TaskRow>("SELECT id, user_id, title, description, completed, updated_at FROM tasks WHERE user_id = ANY($1)", [
        ids,
      ]);
      const gone = await sql.query<TaskRow>(
        "SELECT id, user_id, title, description, completed, updated_at FROM deleted_tasks WHERE user_id = ANY($1)",
        [ids],
      );
      const messages = await sql.query<{ id: string; user_id: string; conversation_id: string; seq: number; status: string }>(
        "SELECT id, user_id, conversation_id, seq, status FROM messages WHERE user_id = ANY($1) ORDER BY conversation_id, seq",
        [ids],
      );

      // Per user: each task's final state key, by global id.
      const finalStates = ids.map(() => new Map<string, string>());
      for (const [rows, deleted] of [
        [live.rows, false],
        [gone.rows, true],
      ] as const) {
        for (const row of rows) {
          const taskId = toGlobalId("Task", row.id);
          const key = stateKey(deleted, { updatedAt: iso(row.updated_at), title: row.title, description: row.description, completed: row.completed });
          finalStates[userIndex.get(row.user_id)!]!.set(taskId, `${taskId}|${key}`);
        }
      }
      // Per user: the settled prefix of each conversation (owed), and every message with its place (for order).
      const owedMessages = ids.map(() => new Set<string>());
      const place = new Map<string, { conversation: string; seq: number; user: number }>();
      const blocked = new Set<string>();
      let unsettled = 0;
      for (const row of messages.rows) {
        const user = userIndex.get(row.user_id)!;
        const id = toGlobalId("Message", row.id);
        place.set(id, { conversation: row.conversation_id, seq: row.seq, user });
        if (row.status === "STREAMING") blocked.add(row.conversation_id);
        if (blocked.has(row.conversation_id)) {
          unsettled += 1;
          continue;
        }
        owedMessages[user]!.add(id);
      }

      const task = emptyVerdict();
      const message = emptyVerdict();
      for (const watcher of this.watchers) {
        const verdict = watcher.feed === "task" ? task : message;
        verdict.subscribers += 1;
        verdict.received += watcher.received;
        verdict.duplicates += watcher.duplicates;
        if (watcher.ended.length > 0) verdict.endedEarly += 1;
        if (watcher.feed === "task") {
          const finals = finalStates[watcher.user]!;
          verdict.expected += finals.size;
          for (const [taskId, key] of finals) if (watcher.lastState.get(taskId) !== key) verdict.lost += 1;
          for (const taskId of watcher.lastState.keys()) if (!finals.has(taskId)) verdict.foreign += 1;
        } else {
          const owed = owedMessages[watcher.user]!;
          verdict.expected += owed.size;
          for (const id of owed) if (!watcher.seen.has(id)) verdict.lost += 1;
          for (const id of watcher.seen.keys()) if (place.get(id)?.user !== watcher.user) verdict.foreign += 1;
          const lastSeq = new Map<string, number>();
          for (const id of watcher.order) {
            const at = place.get(id);
            if (!at) continue;
            if ((lastSeq.get(at.conversation) ?? 0) >= at.seq) verdict.outOfOrder += 1;
            lastSeq.set(at.conversation, at.seq);
          }
        }
      }
      return {
        task,
        message,
        unsettledMessages: unsettled,
        tasksCommitted: { live: live.rowCount ?? 0, deleted: gone.rowCount ?? 0 },
        messagesCommitted: messages.rowCount ?? 0,
      };
    } finally {
      await sql.end();
    }
  }

  /** The first few early ends, for the report. */
  endings(limit = 5): string[] {
    return this.watchers
      .flatMap((watcher) => watcher.ended.map((end) => `${watcher.feed} subscriber of user ${watcher.user}: ${end}`))
      .slice(0, limit);
  }
}

function emptyVerdict(): FeedVerdict {
  return { subscribers: 0, received: 0, expected: 0, lost: 0, duplicates: 0, foreign: 0, outOfOrder: 0, endedEarly: 0 };
}
