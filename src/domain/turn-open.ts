import type { Db } from "../db/client.js";
import { Prisma, type Conversation, type Message, type Turn } from "../generated/prisma/client.js";
import { takeTokenSql, type RateLimit } from "./rate-limits.js";
import { directRows } from "./direct-statement.js";
import { DEFAULT_TIMEZONE } from "./user-settings.js";
import { fromJsonRow, insertMessagesFrom, messagesJson, TURN_STATEMENTS } from "./turn-writes.js";

/**
 * Opening a turn in one statement (issue 26): the rate-limit token, the
 * conversation's lease, the user message at the next seq and its RUNNING
 * turn. Whatever refuses the send (no token, the lease held, a known
 * clientMessageId, a turn waiting for approval) leaves nothing written, and
 * the answer says which it was. sendMessage (chat/send-message.ts) takes the
 * slower path for the rare cases: a clientMessageId seen before, a turn
 * waiting for approval (it ends in the opening transaction).
 */

export interface OpenRequest {
  userId: string;
  content: string;
  clientMessageId: string | null;
  leaseId: string;
  ttlMs: number;
  /** The token to take first, when sendMessage is rate limited (and this send has not paid yet). */
  charge?: { bucket: string; limit: RateLimit } | undefined;
}

export interface Opened {
  conversation: Conversation;
  userMessage: Message;
  turn: Turn;
  /** The user's time zone as the opening read it (the default when they never set one). */
  timezone: string;
}

/** What came of one try. */
export type OpenOutcome =
  | ({ kind: "opened" } & Opened)
  /** The clientMessageId was used before: nothing stored. */
  | { kind: "duplicate" }
  /** No token: nothing stored. */
  | { kind: "limited" }
  /** Another turn holds the lease (`charged`: this try paid its token anyway, in a race). */
  | { kind: "busy"; charged: boolean }
  /** A turn of the conversation waits for approval: the opening must end it, in the slower path. */
  | { kind: "waiting" }
  | { kind: "missing" };

interface OpenRow {
  conversation: Record<string, unknown> | null;
  message: Record<string, unknown> | null;
  turn: Record<string, unknown> | null;
  charged: boolean;
  timezone: string | null;
  duplicate: boolean;
  owned: boolean;
  free: boolean;
  waiting: boolean;
}

function expiryAfter(ttlMs: number): Prisma.Sql {
  return Prisma.sql`now() + make_interval(secs => ${ttlMs / 1000})`;
}

function duplicateSql(request: OpenRequest): Prisma.Sql {
  if (request.clientMessageId === null) return Prisma.sql`FALSE`;
  return Prisma.sql`EXISTS (SELECT 1 FROM messages WHERE user_id = ${request.userId} AND client_message_id = ${request.clientMessageId})`;
}

/** The token CTE (taken when `when` holds) and the condition that it was taken; TRUE without a charge. */
function chargeParts(request: OpenRequest, when: Prisma.Sql): { cte: Prisma.Sql; taken: Prisma.Sql } {
  if (!request.charge) return { cte: Prisma.sql`charge AS (SELECT 1 WHERE FALSE)`, taken: Prisma.sql`TRUE` };
  const { bucket, limit } = request.charge;
  return { cte: Prisma.sql`charge AS (${takeTokenSql(request.userId, bucket, limit, when)})`, taken: Prisma.sql`EXISTS (SELECT 1 FROM charge)` };
}

/** The message and turn CTEs after `conv` (the conversation row with the user message's seq as last_seq). */
function messageAndTurn(request: OpenRequest): Prisma.Sql {
  const message = messagesJson([{ role: "user", content: request.content, clientMessageId: request.clientMessageId }]);
  return Prisma.sql`
    msg AS (${insertMessagesFrom(Prisma.sql`conv`, message, 1)}),
    turn AS (
      INSERT INTO turns (user_id, conversation_id, user_message_id, lease_id)
      SELECT user_id, conversation_id, id, ${request.leaseId}::uuid FROM msg
      RETURNING *
    )`;
}

/** What an opening answers; the user's time zone rides along, so the turn need not read it (one statement fewer). */
function openedColumns(userId: string): Prisma.Sql {
  return Prisma.sql`
  (SELECT to_jsonb(conv) FROM conv) AS conversation, (SELECT to_jsonb(msg) FROM msg) AS message,
  (SELECT to_jsonb(turn) FROM turn) AS turn, EXISTS (SELECT 1 FROM charge) AS charged,
  (SELECT timezone FROM user_settings WHERE user_id = ${userId}) AS timezone`;
}

function outcomeOf(row: OpenRow | undefined, request: OpenRequest): OpenOutcome {
  if (row?.conversation && row.message && row.turn) {
    return {
      kind: "opened",
      conversation: fromJsonRow<Conversation>(row.conversation),
      userMessage: fromJsonRow<Message>(row.message),
      turn: fromJsonRow<Turn>(row.turn),
      timezone: row.timezone ?? DEFAULT_TIMEZONE,
    };
  }
  if (!row?.owned) return { kind: "missing" };
  if (row.duplicate) return { kind: "duplicate" };
  if (row.waiting) return { kind: "waiting" };
  if (row.free && request.charge && !row.charged) return { kind: "limited" };
  return { kind: "busy", charged: row.charged };
}

/** Creates a conversation holding the lease, with the user message (seq 1) and its RUNNING turn, in one statement. */
export async function openInNewConversation(db: Db, title: string, request: OpenRequest): Promise<OpenOutcome> {
  const duplicate = duplicateSql(request);
  const charge = chargeParts(request, Prisma.sql`NOT ${duplicate}`);
  const [row] = await directRows<OpenRow>(
    db,
    Prisma.sql`
    WITH ${charge.cte},
    conv AS (
      INSERT INTO conversations (user_id, title, last_seq, turn_lease_id, turn_lease_expires_at)
      SELECT ${request.userId}, ${title}, 1, ${request.leaseId}::uuid, ${expiryAfter(request.ttlMs)}
      WHERE NOT ${duplicate} AND ${charge.taken}
      RETURNING *
    ), ${messageAndTurn(request)}
    SELECT ${openedColumns(request.userId)}, ${duplicate} AS duplicate, TRUE AS owned, TRUE AS free, FALSE AS waiting`,
    TURN_STATEMENTS,
  );
  return outcomeOf(row, request);
}

/**
 * One try at opening a turn in an existing conversation, in one statement:
 * takes the lease if it is free (or its holder died: any turn still RUNNING
 * there is marked FAILED / INTERRUPTED, with its streaming answer, by
 * `interrupted`, the CTEs conversation-log.ts builds), bumps last_seq over
 * the dead answers and the new message, and stores the message and its turn.
 */
export async function openInConversation(db: Db, conversationId: string, request: OpenRequest, interrupted: Prisma.Sql): Promise<OpenOutcome> {
  const conversation = Prisma.sql`c.id = ${conversationId}::uuid AND c.user_id = ${request.userId}`;
  const free = Prisma.sql`(c.turn_lease_id IS NULL OR c.turn_lease_expires_at < now())`;
  const waiting = Prisma.sql`EXISTS (SELECT 1 FROM turns w WHERE w.conversation_id = ${conversationId}::uuid AND w.status = 'REQUIRES_ACTION')`;
  const duplicate = duplicateSql(request);
  const open = Prisma.sql`EXISTS (SELECT 1 FROM conversations c WHERE ${conversation} AND ${free}) AND NOT ${waiting} AND NOT ${duplicate}`;
  const charge = chargeParts(request, open);
  const [row] = await directRows<OpenRow>(
    db,
    Prisma.sql`
    WITH ${charge.cte},
    conv AS (
      UPDATE conversations c
      SET turn_lease_id = ${request.leaseId}::uuid, turn_lease_expires_at = ${expiryAfter(request.ttlMs)},
          -- Rows above last_seq are answers still streaming: a dead turn's, failed by interrupted_answers.
          last_seq = COALESCE((SELECT max(m.seq) FROM messages m WHERE m.conversation_id = c.id AND m.seq > c.last_seq), c.last_seq) + 1
      WHERE ${conversation} AND ${free} AND NOT ${waiting} AND NOT ${duplicate} AND ${charge.taken}
      RETURNING c.*
    ), ${interrupted}, ${messageAndTurn(request)}
    SELECT ${openedColumns(request.userId)},
      ${duplicate} AS duplicate, ${waiting} AS waiting,
      EXISTS (SELECT 1 FROM conversations c WHERE ${conversation}) AS owned,
      EXISTS (SELECT 1 FROM conversations c WHERE ${conversation} AND ${free}) AS free`,
    TURN_STATEMENTS,
  );
  return outcomeOf(row, request);
}
