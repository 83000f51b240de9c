import type { Db, DbClient } from "../db/client.js";
import { Prisma, type Conversation, type Message, type MessageStatus, type Turn, type TurnStatus } from "../generated/prisma/client.js";
import { directRows, StatementNames } from "./direct-statement.js";
import type { NewMessage } from "./messages.js";

/**
 * A running turn's writes, each in one statement (issue 26: a turn with one
 * tool call in at most ten). Each statement checks the turn first, and locks
 * its row (RUNNING, and unless it is a cancelled turn's own end, no cancel
 * asked), then settles or appends its messages with the seq bump on the
 * conversation row, and returns every row it wrote: the turn keeps them
 * instead of reading them back. Lock order is the turn's row, then the
 * conversation's, as every other writer of a turn takes them.
 */

export interface TokenUsage {
  inputTokens: number;
  outputTokens: number;
}

/** Which turn writes, and whose: enough to scope every write. */
export interface TurnScope {
  id: string;
  userId: string;
  conversationId: string;
}

/** A streamed answer's row given its final fields. */
export interface Settle {
  id: string;
  content: string;
  status: Exclude<MessageStatus, "STREAMING">;
  stopCode?: string | null | undefined;
  toolPlan?: string | null | undefined;
  toolCalls?: Prisma.InputJsonValue | undefined;
}

export interface TurnWrite {
  /** Ends the turn with this status: the check is the UPDATE itself (RUNNING, and with yieldToCancel, no cancel asked). */
  end?: { status: Exclude<TurnStatus, "RUNNING" | "REQUIRES_ACTION">; stopCode: string | null; yieldToCancel: boolean } | undefined;
  usage?: TokenUsage | undefined;
  settle?: Settle | undefined;
  append?: readonly NewMessage[] | undefined;
  /** Gives the conversation's lease back, if it is still the turn's. */
  releaseLease?: boolean | undefined;
  /** Tool call ids the step stores: nothing is written if one already answers a call in the conversation. */
  freshCallIds?: readonly string[] | undefined;
}

export interface TurnWritten {
  turn: Turn;
  conversation: Conversation;
  /** The rows settled and appended, in seq order. */
  messages: Message[];
}

/** Nothing was written: the turn may no longer write, or (freshCallIds) an id is in use. */
export type WriteRefused = "not-writable" | "ids-in-use";

/** A row as to_jsonb gives it (snake_case, timestamps as text) in Prisma's shape. */
export function fromJsonRow<T>(row: Record<string, unknown>): T {
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(row)) {
    const name = key.replace(/_([a-z])/g, (_, c: string) => c.toUpperCase());
    out[name] = key.endsWith("_at") && typeof value === "string" ? new Date(value) : value;
  }
  return out as T;
}

/** The JSON array a statement inserts messages from (jsonb_array_elements): absent fields are NULL there. */
export function messagesJson(messages: readonly NewMessage[]): string {
  return JSON.stringify(
    messages.map((m) => ({
      role: m.role,
      content: m.content,
      tool_plan: m.toolPlan ?? undefined,
      tool_calls: m.toolCalls ?? undefined,
      tool_call_id: m.toolCallId ?? undefined,
      client_message_id: m.clientMessageId ?? undefined,
      stop_code: m.stopCode ?? undefined,
      status: m.status ?? "COMPLETE",
    })),
  );
}

/** INSERT of `json`'s messages after `seqs` (a relation with id, user_id and last_seq: the bumped conversation row). */
export function insertMessagesFrom(seqs: Prisma.Sql, json: string, count: number): Prisma.Sql {
  return Prisma.sql`
    INSERT INTO messages (conversation_id, user_id, seq, role, content, tool_plan, tool_calls, tool_call_id, client_message_id, stop_code, status)
    SELECT s.id, s.user_id, s.last_seq - ${count}::int + x.ord::int, (x.m->>'role')::message_role, x.m->>'content', x.m->>'tool_plan',
           x.m->'tool_calls', x.m->>'tool_call_id', x.m->>'client_message_id', x.m->>'stop_code', (x.m->>'status')::message_status
    FROM ${seqs} s, jsonb_array_elements(${json}::jsonb) WITH ORDINALITY AS x(m, ord)
    RETURNING *`;
}

function addUsage(usage: TokenUsage | undefined): Prisma.Sql {
  if (!usage) return Prisma.empty;
  return Prisma.sql`,
    input_tokens = COALESCE(input_tokens, 0) + ${usage.inputTokens}::int,
    output_tokens = COALESCE(output_tokens, 0) + ${usage.outputTokens}::int`;
}

/** The CTE that checks and locks the turn row: an UPDATE when the write changes it, else SELECT … FOR UPDATE. */
function guardCte(turnId: string, write: TurnWrite): Prisma.Sql {
  const fresh = Prisma.sql`(SELECT ok FROM fresh)`;
  const { end } = write;
  if (end) {
    const cancel = end.yieldToCancel ? Prisma.sql`AND cancel_requested_at IS NULL` : Prisma.empty;
    return Prisma.sql`guard AS (
      UPDATE turns SET status = ${end.status}::turn_status, stop_code = ${end.stopCode}, finished_at = now() ${addUsage(write.usage)}
      WHERE id = ${turnId}::uuid AND status = 'RUNNING' ${cancel} AND ${fresh} RETURNING *)`;
  }
  const where = Prisma.sql`id = ${turnId}::uuid AND status = 'RUNNING' AND cancel_requested_at IS NULL AND ${fresh}`;
  if (write.usage) return Prisma.sql`guard AS (UPDATE turns SET id = id ${addUsage(write.usage)} WHERE ${where} RETURNING *)`;
  return Prisma.sql`guard AS (SELECT * FROM turns WHERE ${where} FOR UPDATE)`;
}

function settleCte(conversationId: string, settle: Settle | undefined): Prisma.Sql {
  if (!settle) return Prisma.sql`settled AS (SELECT * FROM messages WHERE FALSE)`;
  const plan = settle.toolPlan === undefined ? Prisma.empty : Prisma.sql`, tool_plan = ${settle.toolPlan}`;
  const calls = settle.toolCalls === undefined ? Prisma.empty : Prisma.sql`, tool_calls = ${JSON.stringify(settle.toolCalls)}::jsonb`;
  return Prisma.sql`settled AS (
    UPDATE messages SET content = ${settle.content}, status = ${settle.status}::message_status, stop_code = ${settle.stopCode ?? null} ${plan} ${calls}
    WHERE id = ${settle.id}::uuid AND conversation_id = ${conversationId}::uuid AND status = 'STREAMING' AND EXISTS (SELECT 1 FROM guard)
    RETURNING *)`;
}

/** The one statement of a turn's write (see TurnWrite). */
function turnWriteSql(turn: TurnScope, write: TurnWrite): Prisma.Sql {
  const append = write.append ?? [];
  const ids = JSON.stringify(write.freshCallIds ?? []);
  const release = write.releaseLease
    ? Prisma.sql`,
      turn_lease_id = CASE WHEN turn_lease_id = (SELECT lease_id FROM guard) THEN NULL ELSE turn_lease_id END,
      turn_lease_expires_at = CASE WHEN turn_lease_id = (SELECT lease_id FROM guard) THEN NULL ELSE turn_lease_expires_at END`
    : Prisma.empty;
  return Prisma.sql`
    WITH fresh AS (
      SELECT NOT EXISTS (
        SELECT 1 FROM messages WHERE conversation_id = ${turn.conversationId}::uuid AND role = 'tool'
          AND tool_call_id IN (SELECT jsonb_array_elements_text(${ids}::jsonb))) AS ok
    ), ${guardCte(turn.id, write)}, ${settleCte(turn.conversationId, write.settle)},
    conv AS (
      UPDATE conversations SET last_seq = GREATEST(last_seq, COALESCE((SELECT seq FROM settled), 0)) + ${append.length}::int ${release}
      WHERE id = ${turn.conversationId}::uuid AND user_id = ${turn.userId} AND EXISTS (SELECT 1 FROM guard)
      RETURNING *
    ), appended AS (${insertMessagesFrom(Prisma.sql`conv`, messagesJson(append), append.length)})
    SELECT (SELECT ok FROM fresh) AS fresh, (SELECT to_jsonb(guard) FROM guard) AS turn, (SELECT to_jsonb(conv) FROM conv) AS conversation,
      (SELECT COALESCE(jsonb_agg(to_jsonb(w) ORDER BY w.seq), '[]'::jsonb) FROM (SELECT * FROM settled UNION ALL SELECT * FROM appended) w) AS messages`;
}

/** The names of a turn's statements: their texts vary only with the code's few shapes (see direct-statement.ts). */
export const TURN_STATEMENTS = new StatementNames("turn", 64);

interface WrittenRow {
  fresh: boolean;
  turn: Record<string, unknown> | null;
  conversation: Record<string, unknown> | null;
  messages: Record<string, unknown>[];
}

/**
 * One write of a running turn, in one statement (with `db` a transaction, in
 * that transaction): the check of the turn, its usage or end, the streamed
 * answer settled, messages appended at the next seqs, the lease given back.
 */
export async function writeAsTurn(db: DbClient, turn: TurnScope, write: TurnWrite): Promise<TurnWritten | WriteRefused> {
  const [row] = await directRows<WrittenRow>(db, turnWriteSql(turn, write), TURN_STATEMENTS);
  if (!row?.fresh) return "ids-in-use";
  if (!row.turn || !row.conversation) return "not-writable";
  return {
    turn: fromJsonRow<Turn>(row.turn),
    conversation: fromJsonRow<Conversation>(row.conversation),
    messages: row.messages.map((m) => fromJsonRow<Message>(m)),
  };
}

/**
 * Stores the first text of a streamed answer as a STREAMING message at the
 * next seq, in one statement that checks and locks the turn, then the
 * conversation (its row lock hands out the seq, as a bump does). last_seq
 * stays where it is: it is the newest *settled* message, so anyone who starts
 * following the conversation from last_seq meets this answer when it settles
 * (the `settled` CTE of writeAsTurn moves last_seq over it), and a row above
 * last_seq is always one still streaming. Null when the turn may no longer write.
 */
export async function startAnswerRow(db: Db, turn: TurnScope, content: string): Promise<Message | null> {
  const [row] = await directRows<{ message: Record<string, unknown> }>(
    db,
    Prisma.sql`
    WITH guard AS (
      SELECT id FROM turns WHERE id = ${turn.id}::uuid AND status = 'RUNNING' AND cancel_requested_at IS NULL FOR UPDATE
    ), conv AS (
      SELECT id, last_seq FROM conversations
      WHERE id = ${turn.conversationId}::uuid AND user_id = ${turn.userId} AND EXISTS (SELECT 1 FROM guard) FOR UPDATE
    ), inserted AS (
      INSERT INTO messages (conversation_id, user_id, seq, role, content, status)
      SELECT id, ${turn.userId}, last_seq + 1, 'assistant', ${content}, 'STREAMING' FROM conv
      RETURNING *
    )
    SELECT to_jsonb(inserted) AS message FROM inserted`,
    TURN_STATEMENTS,
  );
  return row ? fromJsonRow<Message>(row.message) : null;
}
