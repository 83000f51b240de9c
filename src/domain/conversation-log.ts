import type { Db, DbClient } from "../db/client.js";
import { notFound } from "../lib/errors.js";
import { Prisma, type Message, type MessageStatus, type Turn, type TurnStatus } from "../generated/prisma/client.js";
import { appendMessages, type NewMessage } from "./messages.js";
import { expireDueTurns, insertApprovals, settleWaitingTurns, type HeldCall } from "./tool-approvals.js";
import { openInConversation, openInNewConversation, type OpenOutcome, type OpenRequest } from "./turn-open.js";
import { startAnswerRow, writeAsTurn, type Settle, type TokenUsage, type TurnWritten } from "./turn-writes.js";

export type { TokenUsage, TurnWritten } from "./turn-writes.js";
export type { OpenOutcome, OpenRequest } from "./turn-open.js";

/**
 * The conversation log: every database access of a chat turn goes through
 * here. A conversation is an append-only list of messages (seqs handed out
 * under the conversation row's lock, see appendMessages); a turn is a row of
 * its own that says what became of one user message; the conversation's lease
 * says which turn may write. The chat loop above it holds no state that
 * another instance would need.
 *
 * Every write a turn makes after it opens checks, in the same statement or
 * transaction, that the turn is still RUNNING and not asked to stop: a turn
 * whose instance lost its lease, or that was cancelled, cannot add to the log
 * behind the back of whoever ended it.
 */

/** Stop codes of turns that no bound ended (the bounds' codes are in errors.ts). */
export const TurnStopCode = {
  /** cancelTurn stopped it. */
  CANCELLED: "CANCELLED",
  /** The instance running it died (its lease expired) or shut down. */
  INTERRUPTED: "INTERRUPTED",
} as const;

/** Which turn the loop runs, and whose: enough to scope every write. */
export interface TurnIdentity {
  id: string;
  userId: string;
  conversationId: string;
}

// The lease -------------------------------------------------------------------

/** When a lease taken now runs out, by the database's clock. */
function expiryAfter(ttlMs: number): Prisma.Sql {
  return Prisma.sql`now() + make_interval(secs => ${ttlMs / 1000})`;
}

export type LeaseAttempt = "taken" | "busy" | "missing";

/**
 * One try at the conversation's lease. Whoever takes it finds any turn still
 * RUNNING there dead (its lease was released without ending it, or expired),
 * and marks it FAILED / INTERRUPTED, with its streaming answer, in the same
 * statement.
 */
export async function tryTakeLease(db: Db, userId: string, conversationId: string, leaseId: string, ttlMs: number): Promise<LeaseAttempt> {
  const [row] = await db.$queryRaw<{ taken: number; owned: number }[]>`
    WITH taken AS (
      UPDATE conversations
      SET turn_lease_id = ${leaseId}::uuid, turn_lease_expires_at = ${expiryAfter(ttlMs)},
          -- Rows above last_seq are answers still streaming: a dead turn's, failed below.
          last_seq = COALESCE(
            (SELECT max(m.seq) FROM messages m WHERE m.conversation_id = conversations.id AND m.seq > conversations.last_seq),
            last_seq)
      WHERE id = ${conversationId}::uuid AND user_id = ${userId}
        AND (turn_lease_id IS NULL OR turn_lease_expires_at < now())
      RETURNING id
    ), ${interruptedTurns(Prisma.sql`t.conversation_id IN (SELECT id FROM taken)`, { onlyDead: false, settleSeqs: false })}
    SELECT (SELECT count(*) FROM taken)::int AS taken,
           (SELECT count(*) FROM conversations WHERE id = ${conversationId}::uuid AND user_id = ${userId})::int AS owned`;
  if (row?.taken === 1) return "taken";
  return row?.owned === 1 ? "busy" : "missing";
}

/** Gives the lease back, if it is still this one. */
export async function releaseLease(db: Db, conversationId: string, leaseId: string): Promise<void> {
  await db.$executeRaw`
    UPDATE conversations SET turn_lease_id = NULL, turn_lease_expires_at = NULL
    WHERE id = ${conversationId}::uuid AND turn_lease_id = ${leaseId}::uuid`;
}

/**
 * CTEs (for a WITH list) that mark RUNNING turns matching `filter` FAILED /
 * INTERRUPTED, and their streaming answers FAILED. With `onlyDead`, only turns
 * whose lease is gone: released, taken over, or expired by the database's clock.
 * With `settleSeqs`, last_seq moves over those answers (a statement that
 * updates the conversation row itself does that in its own UPDATE: a row
 * cannot be updated twice in one statement).
 */
function interruptedTurns(filter: Prisma.Sql, options: { onlyDead: boolean; settleSeqs: boolean }): Prisma.Sql {
  const dead = options.onlyDead
    ? Prisma.sql`AND NOT EXISTS (
        SELECT 1 FROM conversations c
        WHERE c.id = t.conversation_id AND c.turn_lease_id = t.lease_id AND c.turn_lease_expires_at >= now())`
    : Prisma.empty;
  return Prisma.sql`
    interrupted AS (
      UPDATE turns t SET status = 'FAILED', stop_code = ${TurnStopCode.INTERRUPTED}, finished_at = now()
      WHERE t.status = 'RUNNING' AND ${filter} ${dead}
      RETURNING t.id, t.user_message_id
    ), interrupted_answers AS (
      UPDATE messages m SET status = 'FAILED'
      FROM interrupted i JOIN messages u ON u.id = i.user_message_id
      WHERE m.conversation_id = u.conversation_id AND m.seq > u.seq AND m.status = 'STREAMING'
      RETURNING m.conversation_id, m.seq
    )${
      options.settleSeqs
        ? Prisma.sql`, settled_seqs AS (
      UPDATE conversations c SET last_seq = GREATEST(c.last_seq, a.seq)
      FROM (SELECT conversation_id, max(seq) AS seq FROM interrupted_answers GROUP BY conversation_id) a
      WHERE c.id = a.conversation_id
      RETURNING c.id
    )`
        : Prisma.empty
    }`;
}

async function interruptDeadTurns(db: Db, filter: Prisma.Sql): Promise<string[]> {
  const rows = await db.$queryRaw<{ id: string }[]>`
    WITH ${interruptedTurns(filter, { onlyDead: true, settleSeqs: true })}
    SELECT id::text FROM interrupted`;
  return rows.map((row) => row.id);
}

/**
 * Marks every RUNNING turn whose lease is gone FAILED / INTERRUPTED: what an
 * instance does at start for turns that instances which died left behind.
 * Returns how many it found.
 */
export async function sweepInterruptedTurns(db: Db): Promise<number> {
  return (await interruptDeadTurns(db, Prisma.sql`TRUE`)).length;
}

/** Marks the turn FAILED / INTERRUPTED if it is RUNNING without a live lease. True if it did. */
export async function interruptIfDead(db: Db, userId: string, turnId: string): Promise<boolean> {
  const ids = await interruptDeadTurns(db, Prisma.sql`t.id = ${turnId}::uuid AND t.user_id = ${userId}`);
  return ids.length > 0;
}

// Opening and finding turns -----------------------------------------------------

export interface OpenedTurn {
  turn: Turn;
  userMessage: Message;
}

export interface NewTurn {
  userId: string;
  content: string;
  clientMessageId: string | null;
  leaseId: string;
}

async function appendUserMessage(tx: DbClient, input: NewTurn, conversationId: string): Promise<OpenedTurn> {
  const [userMessage] = await appendMessages(tx, input.userId, conversationId, [
    { role: "user", content: input.content, clientMessageId: input.clientMessageId },
  ]);
  if (!userMessage) throw new Error("appendMessages returned no row");
  const turn = await tx.turn.create({
    data: { userId: input.userId, conversationId, userMessageId: userMessage.id, leaseId: input.leaseId },
  });
  return { turn, userMessage };
}

/**
 * Commits the user message and its RUNNING turn, in a conversation whose
 * lease `leaseId` is. A turn still waiting for approval there ends first, in
 * the same transaction: the new message is what the user wants now.
 */
export function openTurn(db: Db, conversationId: string, input: NewTurn): Promise<OpenedTurn> {
  return db.$transaction(async (tx) => {
    await settleWaitingTurns(tx, conversationId);
    return appendUserMessage(tx, input, conversationId);
  });
}

/** Creates a conversation holding lease `leaseId`, and commits the user message and its RUNNING turn in it. */
export function openTurnInNewConversation(db: Db, title: string, ttlMs: number, input: NewTurn): Promise<OpenedTurn> {
  return db.$transaction(async (tx) => {
    const conversation = await tx.conversation.create({ data: { userId: input.userId, title }, select: { id: true } });
    // Nobody else can see the row before this commits: the lease is free.
    await tx.$executeRaw`
      UPDATE conversations SET turn_lease_id = ${input.leaseId}::uuid, turn_lease_expires_at = ${expiryAfter(ttlMs)}
      WHERE id = ${conversation.id}::uuid`;
    return appendUserMessage(tx, input, conversation.id);
  });
}

/**
 * One try at opening a turn in one statement (domain/turn-open.ts): in a new
 * conversation (`conversationId` undefined, titled `title`) or in the given
 * one, if its lease is free.
 */
export function tryOpenTurn(db: Db, conversationId: string | undefined, title: string, request: OpenRequest): Promise<OpenOutcome> {
  if (conversationId === undefined) return openInNewConversation(db, title, request);
  const interrupted = interruptedTurns(Prisma.sql`t.conversation_id IN (SELECT id FROM conv)`, { onlyDead: false, settleSeqs: false });
  return openInConversation(db, conversationId, request, interrupted);
}

/** The user message a clientMessageId was sent with, and its turn. */
export async function findByClientMessageId(db: Db, userId: string, clientMessageId: string): Promise<OpenedTurn | null> {
  const userMessage = await db.message.findUnique({
    where: { userId_clientMessageId: { userId, clientMessageId } },
    include: { turn: true },
  });
  if (!userMessage) return null;
  const { turn, ...message } = userMessage;
  if (turn) return { turn, userMessage: message };
  // Every user message gets its turn in the transaction that stores it (and the
  // turns migration gave older ones theirs); should one lack it, it is resumable.
  const made = await db.turn.upsert({
    where: { userMessageId: message.id },
    create: { userId, conversationId: message.conversationId, userMessageId: message.id, status: "FAILED", stopCode: TurnStopCode.INTERRUPTED },
    update: {},
  });
  return { turn: made, userMessage: message };
}

/** Runs a FAILED turn again under lease `leaseId`; null if it is no longer FAILED. */
export async function restartTurn(db: Db, turnId: string, leaseId: string): Promise<Turn | null> {
  const [turn] = await db.turn.updateManyAndReturn({
    where: { id: turnId, status: "FAILED" },
    data: { status: "RUNNING", stopCode: null, finishedAt: null, cancelRequestedAt: null, leaseId, timeUsedMs: 0 },
  });
  return turn ?? null;
}

export async function getTurn(db: DbClient, userId: string, turnId: string): Promise<Turn> {
  const turn = await db.turn.findFirst({ where: { id: turnId, userId } });
  if (!turn) throw notFound("Turn");
  return turn;
}

/**
 * One of the user's turns, or null (another user's is null too). findUnique,
 * so that Prisma batches the lookups of one tick into one query.
 */
export async function findTurn(db: DbClient, userId: string, turnId: string): Promise<Turn | null> {
  const turn = await db.turn.findUnique({ where: { id: turnId } });
  return turn?.userId === userId ? turn : null;
}

/** The user's turns among `ids` (raw ids); another user's, or a missing one, is left out. */
export function findOwnedTurns(db: DbClient, userId: string, ids: readonly string[]): Promise<{ id: string }[]> {
  if (ids.length === 0) return Promise.resolve([]);
  return db.turn.findMany({ where: { userId, id: { in: [...new Set(ids)] } }, select: { id: true } });
}

/** A turn's user message and everything after it, up to the next user message, in seq order. */
export async function turnMessages(db: DbClient, userMessage: Pick<Message, "conversationId" | "seq">): Promise<Message[]> {
  const { conversationId, seq } = userMessage;
  const next = await db.message.findFirst({
    where: { conversationId, role: "user", seq: { gt: seq } },
    orderBy: { seq: "asc" },
    select: { seq: true },
  });
  return db.message.findMany({
    where: { conversationId, seq: { gte: seq, ...(next ? { lt: next.seq } : {}) } },
    orderBy: { seq: "asc" },
  });
}

/** The messages of one of the user's turns (NOT_FOUND for another's). */
export async function messagesOfTurn(db: DbClient, userId: string, turnId: string): Promise<Message[]> {
  const turn = await db.turn.findFirst({ where: { id: turnId, userId }, select: { userMessage: { select: { conversationId: true, seq: true } } } });
  if (!turn) throw notFound("Turn");
  return turnMessages(db, turn.userMessage);
}

/** True when a user message was stored after seq `seq` in the conversation. */
export async function hasLaterUserMessage(db: DbClient, conversationId: string, seq: number): Promise<boolean> {
  return (await db.message.count({ where: { conversationId, role: "user", seq: { gt: seq } } })) > 0;
}

/**
 * The conversation's turn in progress, RUNNING or waiting for approval
 * (REQUIRES_ACTION), or null. A RUNNING turn whose lease is gone is found dead
 * here and marked FAILED / INTERRUPTED, and a waiting one past its approval's
 * expiry is ended APPROVAL_EXPIRED, instead of returned.
 */
export async function activeTurn(db: Db, userId: string, conversationId: string): Promise<Turn | null> {
  const turn = await db.turn.findFirst({ where: { conversationId, userId, status: { in: ["RUNNING", "REQUIRES_ACTION"] } } });
  if (!turn) return null;
  if (turn.status === "REQUIRES_ACTION") return (await expireDueTurns(db, { userId, turnId: turn.id })) > 0 ? null : turn;
  return (await interruptIfDead(db, userId, turn.id)) ? null : turn;
}

// Control: cancel, and what the running instance checks ---------------------------

/** Asks a RUNNING turn to stop (the turns trigger tells its instance). False if it is not RUNNING. */
export async function requestCancel(db: Db, userId: string, turnId: string): Promise<boolean> {
  const count = await db.$executeRaw`
    UPDATE turns SET cancel_requested_at = now()
    WHERE id = ${turnId}::uuid AND user_id = ${userId} AND status = 'RUNNING' AND cancel_requested_at IS NULL`;
  return count === 1;
}

export interface TurnControl {
  status: TurnStatus;
  cancelRequested: boolean;
}

/** What the running instance checks as a backstop to the cancel notification. */
export async function turnControl(db: DbClient, turnId: string): Promise<TurnControl | null> {
  const turn = await db.turn.findUnique({ where: { id: turnId }, select: { status: true, cancelRequestedAt: true } });
  return turn ? { status: turn.status, cancelRequested: turn.cancelRequestedAt !== null } : null;
}

/** Locks the turn row for the rest of `tx`; true if it may still write (RUNNING, no cancel asked). */
async function mayWrite(tx: DbClient, turnId: string): Promise<boolean> {
  const rows = await tx.$queryRaw<{ ok: boolean }[]>`
    SELECT status = 'RUNNING' AND cancel_requested_at IS NULL AS ok FROM turns WHERE id = ${turnId}::uuid FOR UPDATE`;
  return rows[0]?.ok === true;
}

/** Thrown inside a transaction to roll it back when the turn may no longer write (it ended, or a cancel was asked). */
class TurnNotWritable extends Error {}

async function whileRunning<T>(db: Db, turnId: string, work: (tx: DbClient) => Promise<T>): Promise<T | undefined> {
  try {
    return await db.$transaction(async (tx) => {
      if (!(await mayWrite(tx, turnId))) throw new TurnNotWritable();
      return work(tx);
    });
  } catch (error) {
    if (error instanceof TurnNotWritable) return undefined;
    throw error;
  }
}

// The loop's writes --------------------------------------------------------------

export interface Step {
  /** The streamed answer row the step's text went into, if its text reached a flush. */
  streamedId?: string | undefined;
  content: string;
  toolPlan?: string | undefined;
  toolCalls: Prisma.InputJsonValue;
  /** The ids of its tool calls: the step is not stored if one already answers a call in the conversation. */
  callIds: readonly string[];
}

/**
 * Stores an assistant step that asked for tools, and adds the model call's
 * usage to the turn, in one statement. "not-writable" (nothing stored) when
 * the turn may no longer write; "ids-in-use" when a call id already answers
 * a call in the conversation (the caller gives its calls fresh ids).
 */
export async function recordStep(db: Db, turn: TurnIdentity, step: Step, usage: TokenUsage | undefined) {
  const fields = { content: step.content, toolPlan: step.toolPlan ?? null, toolCalls: step.toolCalls, status: "COMPLETE" as const };
  return writeAsTurn(db, turn, {
    usage,
    freshCallIds: step.callIds,
    ...(step.streamedId ? { settle: { id: step.streamedId, ...fields } } : { append: [{ role: "assistant", ...fields }] }),
  });
}

/**
 * Runs one tool call and stores its result in one transaction: the call's
 * own statements, then the result, in a statement that checks and locks the
 * turn row first. A cancel that lands while the call runs rolls the call back
 * with it (nothing of it commits); one asked for after the check waits for the
 * commit. Null (nothing stored, nothing changed) when the turn may no longer write.
 */
export async function recordToolCall(db: Db, turn: TurnIdentity, run: (tx: DbClient) => Promise<NewMessage>): Promise<Message | null> {
  try {
    return await db.$transaction(async (tx) => {
      const written = await writeAsTurn(tx, turn, { append: [await run(tx)] });
      if (typeof written === "string") throw new TurnNotWritable();
      return written.messages[0] ?? null;
    });
  } catch (error) {
    if (error instanceof TurnNotWritable) return null;
    throw error;
  }
}

export interface Pause {
  /** The calls the user must decide on. */
  held: readonly HeldCall[];
  /** CHAT_APPROVAL_TTL: how long the approvals wait. */
  ttlMs: number;
  /** The turn's own time used so far (a resumed turn gets the rest of its bound). */
  timeUsedMs: number;
}

/**
 * Pauses a RUNNING turn for the user's approval (issue 24): its PENDING
 * approvals, the turn REQUIRES_ACTION with the time it has used, and the
 * conversation's lease given back, in one transaction. Nothing of the wait is
 * in memory: a decision on any instance, after any restart, resumes it. Null
 * (nothing stored) when the turn may no longer write.
 */
export async function pauseTurn(db: Db, turn: TurnIdentity, pause: Pause): Promise<Turn | null> {
  const paused = await whileRunning(db, turn.id, async (tx) => {
    await insertApprovals(tx, turn, pause.held, pause.ttlMs);
    await tx.$executeRaw`
      UPDATE conversations SET turn_lease_id = NULL, turn_lease_expires_at = NULL
      WHERE id = ${turn.conversationId}::uuid AND turn_lease_id = (SELECT lease_id FROM turns WHERE id = ${turn.id}::uuid)`;
    await tx.$executeRaw`
      UPDATE turns SET status = 'REQUIRES_ACTION', lease_id = NULL, time_used_ms = ${Math.round(pause.timeUsedMs)}::int
      WHERE id = ${turn.id}::uuid`;
    return tx.turn.findUniqueOrThrow({ where: { id: turn.id } });
  });
  return paused ?? null;
}

/**
 * Takes the conversation's lease inside the caller's transaction, if it is
 * free (or its holder died). What a decision that resumes a waiting turn
 * does, in the transaction that records it. False when another turn holds it.
 */
export async function takeFreeLease(tx: DbClient, conversationId: string, leaseId: string, ttlMs: number): Promise<boolean> {
  const count = await tx.$executeRaw`
    UPDATE conversations SET turn_lease_id = ${leaseId}::uuid, turn_lease_expires_at = ${expiryAfter(ttlMs)}
    WHERE id = ${conversationId}::uuid AND (turn_lease_id IS NULL OR turn_lease_expires_at < now())`;
  return count === 1;
}

/** Stores the first text of a streamed answer as a STREAMING message; null when the turn may no longer write. */
export function startAnswer(db: Db, turn: TurnIdentity, content: string): Promise<Message | null> {
  return startAnswerRow(db, turn, content);
}

/**
 * Writes a streaming answer's text so far: one statement, which also checks
 * the turn (the backstop to the cancel notification). False when the turn
 * may no longer write.
 *
 * The statement's own transaction commits without waiting for the WAL to
 * reach disk (synchronous_commit off, for it alone): a flush is an
 * intermediate state that the turn's end rewrites in a durable transaction,
 * and a database crash that lost the last flushes also ends the turn. That
 * takes the disk's flush time out of every delta's way to subscribers.
 */
export async function flushAnswer(db: Db, turnId: string, messageId: string, content: string): Promise<boolean> {
  const count = await db.$executeRaw`
    UPDATE messages SET content = ${content}
    FROM (SELECT set_config('synchronous_commit', 'off', true)) AS this_transaction_only
    WHERE id = ${messageId}::uuid AND status = 'STREAMING'
      AND EXISTS (SELECT 1 FROM turns WHERE id = ${turnId}::uuid AND status = 'RUNNING' AND cancel_requested_at IS NULL)`;
  return count === 1;
}

export interface TurnEnding {
  status: Exclude<TurnStatus, "RUNNING" | "REQUIRES_ACTION">;
  stopCode: string | null;
  usage?: TokenUsage | undefined;
  /** The answer this ending settles: the streamed row (if any) gets this text and status, or a row is added. */
  answer?: { id: string | undefined; content: string; status: Exclude<MessageStatus, "STREAMING">; stopCode?: string | undefined } | undefined;
  /** Messages stored after the answer (a bound's stop message). */
  append?: NewMessage[] | undefined;
  /** A normal end gives way to a cancel asked for before it commits. */
  yieldToCancel?: boolean;
}

export type EndOutcome =
  /** Ended here: the rows the end wrote (the lease given back with them). */
  | ({ kind: "ended" } & TurnWritten)
  /** A cancel was asked for first: end it as CANCELLED instead. */
  | { kind: "cancel-requested" }
  /** Someone else ended it (its lease was taken as dead): the turn as they left it. */
  | { kind: "not-running"; turn: Turn };

/** The messages an ending settles and appends, in that order: the answer (its streamed row, or a new one), then any closing message. */
function endingMessages(ending: TurnEnding): { settle?: Settle; append: NewMessage[] } {
  const answer = ending.answer;
  const append = [...(ending.append ?? [])];
  if (answer?.id) {
    return { settle: { id: answer.id, content: answer.content, status: answer.status, stopCode: answer.stopCode ?? null }, append };
  }
  if (answer && (answer.content !== "" || answer.status === "COMPLETE")) {
    append.unshift({ role: "assistant", content: answer.content, status: answer.status, stopCode: answer.stopCode ?? null });
  }
  return { append };
}

/**
 * Ends a RUNNING turn: its status, stop code and usage, its answer's final
 * text and status, any closing message, and (with `releaseLease`) the
 * conversation's lease given back, in one statement, so a reader never sees a COMPLETE answer in a
 * RUNNING turn, nor the reverse.
 */
export async function endTurn(db: Db, turn: TurnIdentity, ending: TurnEnding, releaseLease = true): Promise<EndOutcome> {
  const written = await writeAsTurn(db, turn, {
    end: { status: ending.status, stopCode: ending.stopCode, yieldToCancel: ending.yieldToCancel === true },
    usage: ending.usage,
    ...endingMessages(ending),
    releaseLease,
  });
  if (typeof written !== "string") return { kind: "ended", ...written };
  const current = await db.turn.findUnique({ where: { id: turn.id } });
  // Its conversation was deleted meanwhile (the turn went with it).
  if (!current) throw notFound("Conversation");
  if (current.status === "RUNNING" && current.cancelRequestedAt !== null) return { kind: "cancel-requested" };
  return { kind: "not-running", turn: current };
}

// History ----------------------------------------------------------------------

/**
 * The conversation's messages before seq `beforeSeq`, newest first, a page at
 * a time: the window is filled from the tail and never reads further back
 * than it needs.
 */
export async function* messagesBefore(db: DbClient, conversationId: string, beforeSeq: number, pageSize = 50): AsyncGenerator<Message[]> {
  let cursor = beforeSeq;
  // Seqs start at 1: nothing is before the first message (a new conversation's).
  while (cursor > 1) {
    const page = await db.message.findMany({
      where: { conversationId, seq: { lt: cursor } },
      orderBy: { seq: "desc" },
      take: pageSize,
    });
    if (page.length === 0) return;
    yield page;
    if (page.length < pageSize) return;
    cursor = page.at(-1)!.seq;
  }
}

/** The ids among `ids` that already answer a tool call in the conversation. */
export async function toolCallIdsInUse(db: DbClient, conversationId: string, ids: readonly string[]): Promise<Set<string>> {
  if (ids.length === 0) return new Set();
  const rows = await db.message.findMany({
    where: { conversationId, role: "tool", toolCallId: { in: [...ids] } },
    select: { toolCallId: true },
  });
  return new Set(rows.map((row) => row.toolCallId ?? ""));
}
