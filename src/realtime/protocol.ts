import { createHash } from "node:crypto";
import type { MessageStatus, TurnStatus } from "../generated/prisma/client.js";
import { isUuid } from "../lib/ids.js";
import type { Logger } from "../lib/logger.js";

/**
 * The realtime notification protocol: what the database says when something
 * commits, and the one parser every consumer reads it with.
 *
 * The encoder is SQL, not TypeScript: triggers in prisma/migrations build each
 * payload with json_build_object and send it with todo_realtime_send(channel,
 * payload) (20261201100000_realtime_outbox), which pg_notify()s it or, when
 * the database's transport is nats, writes it to realtime_outbox for the relay
 * to publish on the channel's NATS subject (./transport.ts). A notification
 * is a hint (ids, a seq, a length, a status; never row data or user text):
 * whoever hears it re-reads the rows under the user's scope.
 *
 * Channel: one per user, todo_realtime_channel(user_id) = 'todo_u_' ||
 * md5(user_id) (20261125110000_realtime_notify), matched by userChannel()
 * below. User ids are arbitrary text and identifiers are capped at 63 bytes,
 * hence the hash; md5 hashes the text's UTF-8 bytes on a UTF-8 database, as
 * createHash does here.
 *
 * Kinds, by the trigger that sends them (wire keys → parsed field):
 *
 * - "message": a settled message (inserted settled, or ending its stream).
 *   todo_notify_message() on messages_notify (AFTER INSERT) and
 *   messages_notify_update (AFTER UPDATE of status or content), when the row
 *   is not STREAMING (20261127120000_turns).
 *   i → messageId, c → conversationId, s → seq, st → status (sent since the
 *   turns migration; absent before it).
 * - "stream": an answer being written. The same function and triggers, when
 *   the row is STREAMING: its insert and each flush of its content.
 *   i → messageId, c → conversationId, s → seq, o → length
 *   (char_length(content): code points so far).
 * - "task": todo_notify_task() on tasks_notify (AFTER INSERT OR DELETE) and
 *   tasks_notify_update (AFTER UPDATE that changes a column;
 *   20261127110000_database_clock). op is TG_OP; a task moved to another
 *   user (raw SQL only) is a DELETE on the old owner's channel, then an
 *   UPDATE on the new one's (20261125120000_task_move_tombstone).
 *   op → op, i → taskId.
 * - "turn": todo_notify_turn() on turns_notify (AFTER UPDATE of status or
 *   cancel_requested_at; 20261127120000_turns; and of last_decision_at, a
 *   decision on one of its held calls) and turns_notify_insert (AFTER
 *   INSERT: a turn starts RUNNING; both 20261208100000_tool_approvals).
 *   i → turnId, c → conversationId, st → status, x → cancelRequested.
 * - "conversation": todo_notify_conversation() on conversations_notify
 *   (AFTER INSERT OR DELETE) and conversations_notify_update (AFTER UPDATE
 *   that moves updated_at: a rename, a settled message bumping last_seq;
 *   not the turn lease, and not an answer's streaming flushes, which write
 *   the message row only; 20261209400000_conversation_notify). op is TG_OP;
 *   a deletion leaves a deleted_conversations tombstone; a conversation
 *   moved to another user (raw SQL only) is a DELETE on the old owner's
 *   channel, then an UPDATE on the new one's.
 *   op → op, i → conversationId.
 *
 * Size: Postgres refuses a payload of 8,000 bytes or more, and the refusal
 * aborts the transaction that wrote the row. Every field above is an id, an
 * integer, an enum or a boolean, so a payload stays under 200 bytes whatever
 * the row holds; a field added later must keep it so (no text from the row).
 *
 * Delivery (postgres): at commit, in commit order, only to connections
 * LISTENing then; identical payloads on one channel in one transaction arrive
 * once. (nats): once the relay has published the row, in outbox id order, at
 * least once; a commit the subscription had seen when it started is dropped.
 * Hence hints, and catch-up from the rows after a transport outage.
 *
 * Parsing never throws. A payload that is not one of the kinds above, well
 * formed, is logged at warn (length and reason, never the payload) and
 * dropped: an id that is not a uuid would otherwise reach a uuid column's
 * query, fail it, and stall the user's feed retrying it. A well-formed
 * payload of a kind this version does not know (a newer instance's
 * migration, during a rolling deploy) is dropped at debug.
 */

/** Postgres' limit: a NOTIFY payload must be shorter than this many bytes. */
export const MAX_PAYLOAD_BYTES = 8000;

/** A row's change, as the trigger's TG_OP names it (tasks and conversations). */
export type RowOp = "INSERT" | "UPDATE" | "DELETE";
export type TaskOp = RowOp;

export interface MessageNotification {
  kind: "message";
  messageId: string;
  conversationId: string;
  seq: number;
  /** The settled status; undefined from triggers older than the turns migration. */
  status: MessageStatus | undefined;
}

export interface StreamNotification {
  kind: "stream";
  messageId: string;
  conversationId: string;
  seq: number;
  /** The answer's length so far, in characters (code points). */
  length: number;
}

export interface TaskNotification {
  kind: "task";
  op: TaskOp;
  taskId: string;
}

export interface TurnNotification {
  kind: "turn";
  turnId: string;
  conversationId: string;
  status: TurnStatus;
  cancelRequested: boolean;
}

export interface ConversationNotification {
  kind: "conversation";
  op: RowOp;
  conversationId: string;
}

export type Notification = MessageNotification | StreamNotification | TaskNotification | TurnNotification | ConversationNotification;

/** Must match todo_realtime_channel() in the realtime migration. */
export function userChannel(userId: string): string {
  return `todo_u_${createHash("md5").update(userId, "utf8").digest("hex")}`;
}

/** What decoding a payload came to: a notification, a kind this version does not know, or why it is malformed. */
export type Decoded = { notification: Notification } | { unknownKind: string } | { malformed: string };

/** The parser every consumer uses: the notification, or undefined (logged) for anything else. Never throws. */
export function parseNotification(payload: string, logger: Logger): Notification | undefined {
  const decoded = decodeNotification(payload);
  if ("notification" in decoded) return decoded.notification;
  const bytes = Buffer.byteLength(payload, "utf8");
  if ("unknownKind" in decoded) logger.debug({ bytes }, "dropped a realtime notification of a kind this version does not know");
  else logger.warn({ bytes, reason: decoded.malformed }, "dropped a malformed realtime notification");
  return undefined;
}

/** Decodes a payload without logging. */
export function decodeNotification(payload: string): Decoded {
  let value: unknown;
  try {
    value = JSON.parse(payload);
  } catch {
    return { malformed: "not JSON" };
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) return { malformed: "not a JSON object" };
  const fields = new Fields(value as Record<string, unknown>);
  const kind = fields.raw("k");
  if (typeof kind !== "string") return { malformed: "k is not a string" };
  if (!Object.hasOwn(DECODERS, kind)) return { unknownKind: kind };
  const notification = DECODERS[kind as Notification["kind"]](fields);
  return fields.problem === undefined ? { notification } : { malformed: `${kind}: ${fields.problem}` };
}

const DECODERS: { [K in Notification["kind"]]: (fields: Fields) => Extract<Notification, { kind: K }> } = {
  message: (f) => ({
    kind: "message",
    messageId: f.uuid("i"),
    conversationId: f.uuid("c"),
    seq: f.count("s"),
    status: f.optionalOf("st", MESSAGE_STATUSES),
  }),
  stream: (f) => ({ kind: "stream", messageId: f.uuid("i"), conversationId: f.uuid("c"), seq: f.count("s"), length: f.count("o") }),
  task: (f) => ({ kind: "task", op: f.oneOf("op", ROW_OPS), taskId: f.uuid("i") }),
  turn: (f) => ({
    kind: "turn",
    turnId: f.uuid("i"),
    conversationId: f.uuid("c"),
    status: f.oneOf("st", TURN_STATUSES),
    cancelRequested: f.boolean("x"),
  }),
  conversation: (f) => ({ kind: "conversation", op: f.oneOf("op", ROW_OPS), conversationId: f.uuid("i") }),
};

// Records, not arrays: a value added to the enum in schema.prisma fails the type check here until it is listed.
const MESSAGE_STATUSES: Record<MessageStatus, true> = { STREAMING: true, COMPLETE: true, CANCELLED: true, FAILED: true };
const TURN_STATUSES: Record<TurnStatus, true> = { RUNNING: true, REQUIRES_ACTION: true, COMPLETED: true, CANCELLED: true, FAILED: true };
const ROW_OPS: Record<RowOp, true> = { INSERT: true, UPDATE: true, DELETE: true };

/** Reads a payload's fields; the first one that is wrong is kept in `problem` (the value read is then a placeholder). */
class Fields {
  problem: string | undefined;

  constructor(private readonly note: Record<string, unknown>) {}

  raw(key: string): unknown {
    return Object.hasOwn(this.note, key) ? this.note[key] : undefined;
  }

  uuid(key: string): string {
    const value = this.raw(key);
    if (isUuid(value)) return value;
    return this.fail(key, "a uuid", "");
  }

  /** A non-negative integer (a seq, a length). */
  count(key: string): number {
    const value = this.raw(key);
    if (typeof value === "number" && Number.isSafeInteger(value) && value >= 0) return value;
    return this.fail(key, "a non-negative integer", 0);
  }

  boolean(key: string): boolean {
    const value = this.raw(key);
    if (typeof value === "boolean") return value;
    return this.fail(key, "a boolean", false);
  }

  oneOf<T extends string>(key: string, allowed: Record<T, true>): T {
    const value = this.raw(key);
    if (typeof value === "string" && Object.hasOwn(allowed, value)) return value as T;
    return this.fail(key, `one of ${Object.keys(allowed).join(", ")}`, "" as T);
  }

  optionalOf<T extends string>(key: string, allowed: Record<T, true>): T | undefined {
    return this.raw(key) === undefined ? undefined : this.oneOf(key, allowed);
  }

  private fail<T>(key: string, expected: string, placeholder: T): T {
    this.problem ??= `${key} is not ${expected}`;
    return placeholder;
  }
}
