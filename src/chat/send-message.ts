import { Bounds, charLength, requireStorable } from "../domain/bounds.js";
import { getConversation } from "../domain/conversations.js";
import {
  findByClientMessageId,
  getTurn,
  hasLaterUserMessage,
  interruptIfDead,
  openTurn,
  openTurnInNewConversation,
  restartTurn,
  tryOpenTurn,
  turnMessages,
  type OpenedTurn,
  type OpenRequest,
} from "../domain/conversation-log.js";
import { isUniqueViolation } from "../domain/prisma-errors.js";
import { secondsUntilToken, takeToken } from "../domain/rate-limits.js";
import type { Opened } from "../domain/turn-open.js";
import { badInput, notFound, rateLimited, type AppError } from "../lib/errors.js";
import type { Conversation, Message, Turn } from "../generated/prisma/client.js";
import type { Assistant } from "./assistant.js";
import { storedToolCalls } from "./history.js";
import { acquireLease, BUSY, leaseHandle, leaseTtlMs, newLeaseId, retryWhileBusy, type AcquireOptions, type Lease } from "./lease.js";
import type { TurnEnd } from "./turn-run.js";

export interface SendMessageInput {
  /** Raw conversation id; undefined starts a new conversation. */
  conversationId?: string | undefined;
  content: string;
  clientMessageId?: string | null | undefined;
  /** False: answer once the user message is stored, while the turn runs on. Default true. */
  waitForReply?: boolean | null | undefined;
}

export interface TurnResult {
  conversation: Conversation;
  userMessage: Message;
  /** Everything persisted in this turn so far, user message first, in seq order. */
  messages: Message[];
  reply: Message | null;
  /** Set when a bound ended the turn: the error code the response carries. */
  stopCode: string | null;
  turn: Turn;
}

/**
 * How much longer than a turn's own time a send waits for the conversation's
 * lease: the turn ahead of it ends within its time, plus its last writes.
 */
const LEASE_WAIT_GRACE_MS = 5000;

function leaseOptions(assistant: Assistant): AcquireOptions {
  const { turnTimeoutMs } = assistant.deps;
  return { ttlMs: leaseTtlMs(turnTimeoutMs), deadline: performance.now() + turnTimeoutMs + LEASE_WAIT_GRACE_MS };
}

interface Send {
  userId: string;
  content: string;
  clientMessageId: string | null;
  conversationId: string | undefined;
  waitForReply: boolean;
}

function titleFrom(content: string): string {
  const line = content.trim().split(/\r?\n/, 1)[0] ?? "";
  const chars = [...line];
  return chars.length <= 60 ? line : `${chars.slice(0, 59).join("").trimEnd()}…`;
}

function validate(userId: string, input: SendMessageInput): Send {
  requireStorable("input.content", input.content);
  const length = charLength(input.content.trim());
  if (length < Bounds.messageContent.min) throw badInput("input.content", "must not be empty");
  if (charLength(input.content) > Bounds.messageContent.max) {
    throw badInput("input.content", `must be at most ${Bounds.messageContent.max} characters (got ${charLength(input.content)})`);
  }
  const clientMessageId = input.clientMessageId ?? null;
  if (clientMessageId !== null) {
    requireStorable("input.clientMessageId", clientMessageId);
    const idLength = charLength(clientMessageId);
    if (idLength < Bounds.clientMessageId.min || idLength > Bounds.clientMessageId.max) {
      throw badInput("input.clientMessageId", `must be 1–${Bounds.clientMessageId.max} characters`);
    }
  }
  return { userId, content: input.content, clientMessageId, conversationId: input.conversationId, waitForReply: input.waitForReply ?? true };
}

/**
 * sendMessage: stores the user message (committed on its own, never lost),
 * then runs the turn in the background of this instance. With waitForReply
 * it answers when the turn has ended; without, at once, with the turn RUNNING.
 * Either way the turn does not depend on the request: it runs to its end.
 *
 * The usual send opens its turn in one statement (token, lease, message,
 * turn: openFast); a known clientMessageId, or a turn waiting for approval,
 * takes the slower path, which reads first.
 */
export async function sendMessage(assistant: Assistant, userId: string, input: SendMessageInput): Promise<TurnResult> {
  const send = validate(userId, input);
  const fast = await openFast(assistant, send);
  if (fast.kind === "slow") return sendSlowly(assistant, send, fast.paid);
  const { conversation, userMessage, turn } = fast;
  return follow(assistant, send, userMessage, turn, assistant.launch(fast), conversation);
}

/** The rate-limit bucket of sendMessage, in rate_limit_buckets.name. */
const SEND_MESSAGE_BUCKET = "send_message";

function sendCharge(assistant: Assistant): OpenRequest["charge"] {
  const limit = assistant.deps.rateLimit;
  return limit === undefined || limit.perMinute <= 0 ? undefined : { bucket: SEND_MESSAGE_BUCKET, limit };
}

type FastOpen = ({ kind: "opened"; lease: Lease } & Opened) | { kind: "slow"; paid: boolean };

/**
 * Opens the turn in one statement per try (domain/turn-open.ts), waiting for
 * the lease while another turn holds it. The token is taken in the statement
 * that stores the message, so a refused send leaves no trace; a try that paid
 * and still found the lease taken (a race) does not pay again.
 */
async function openFast(assistant: Assistant, send: Send): Promise<FastOpen> {
  const { db } = assistant;
  const options = leaseOptions(assistant);
  const leaseId = newLeaseId();
  let charge = sendCharge(assistant);
  const fields = { userId: send.userId, content: send.content, clientMessageId: send.clientMessageId, leaseId, ttlMs: options.ttlMs };
  try {
    return await retryWhileBusy(options.deadline, async (): Promise<FastOpen | typeof BUSY> => {
      const outcome = await tryOpenTurn(db, send.conversationId, titleFrom(send.content), { ...fields, charge });
      switch (outcome.kind) {
        case "opened":
          return { ...outcome, lease: leaseHandle(db, outcome.conversation.id, leaseId) };
        case "missing":
          throw notFound("Conversation");
        case "limited":
          throw await limited(assistant, send.userId);
        case "busy":
          if (outcome.charged) charge = undefined;
          return BUSY;
        default:
          return { kind: "slow", paid: charge === undefined && sendCharge(assistant) !== undefined };
      }
    });
  } catch (error) {
    // The same clientMessageId raced in from another request: that one owns the turn.
    if (send.clientMessageId !== null && isUniqueViolation(error)) return { kind: "slow", paid: false };
    throw error;
  }
}

async function limited(assistant: Assistant, userId: string): Promise<AppError> {
  const limit = assistant.deps.rateLimit!;
  const retryAfterSeconds = await secondsUntilToken(assistant.db, userId, SEND_MESSAGE_BUCKET, limit);
  assistant.deps.logger.info({ retryAfterSeconds }, "sendMessage rate limited");
  return rateLimited("Too many messages", retryAfterSeconds);
}

/** The slower path: a clientMessageId seen before (its turn is returned, resumed or waited for), or a waiting turn to end first. */
async function sendSlowly(assistant: Assistant, send: Send, paid: boolean): Promise<TurnResult> {
  const { userId } = send;
  if (!paid) await chargeSend(assistant, userId);
  if (send.clientMessageId !== null) {
    const existing = await findByClientMessageId(assistant.db, userId, send.clientMessageId);
    if (existing) return retryTurn(assistant, send, existing);
  }
  let opened: { lease: Lease } & OpenedTurn;
  try {
    opened = await openNew(assistant, send, leaseOptions(assistant));
  } catch (error) {
    // The same clientMessageId raced in from another request: that one owns the turn.
    if (send.clientMessageId !== null && isUniqueViolation(error)) {
      const existing = await findByClientMessageId(assistant.db, userId, send.clientMessageId);
      if (existing) return retryTurn(assistant, send, existing);
    }
    throw error;
  }
  return follow(assistant, send, opened.userMessage, opened.turn, assistant.launch(opened));
}

/**
 * Takes a token before anything is read or stored, so a refused send leaves no
 * trace. A retry with a known clientMessageId is charged too: it may run the
 * model again, and charging every call keeps the bound simple.
 */
async function chargeSend(assistant: Assistant, userId: string): Promise<void> {
  const limit = assistant.deps.rateLimit;
  if (limit === undefined || limit.perMinute <= 0) return;
  const outcome = await takeToken(assistant.db, userId, SEND_MESSAGE_BUCKET, limit);
  if (outcome.allowed) return;
  assistant.deps.logger.info({ retryAfterSeconds: outcome.retryAfterSeconds }, "sendMessage rate limited");
  throw rateLimited("Too many messages", outcome.retryAfterSeconds);
}

async function openNew(assistant: Assistant, send: Send, leaseOptions: AcquireOptions): Promise<{ lease: Lease } & OpenedTurn> {
  const { db } = assistant;
  const fields = { userId: send.userId, content: send.content, clientMessageId: send.clientMessageId };
  if (send.conversationId === undefined) {
    const leaseId = newLeaseId();
    const opened = await openTurnInNewConversation(db, titleFrom(send.content), leaseOptions.ttlMs, { ...fields, leaseId });
    return { ...opened, lease: leaseHandle(db, opened.turn.conversationId, leaseId) };
  }
  const lease = await acquireLease(db, send.userId, send.conversationId, leaseOptions);
  try {
    return { ...(await openTurn(db, send.conversationId, { ...fields, leaseId: lease.id })), lease };
  } catch (error) {
    await lease.release().catch(() => {});
    throw error;
  }
}

/**
 * A repeated clientMessageId. A RUNNING turn is that turn (waited for with
 * waitForReply), never a second one; an ended one is returned as it was; a
 * FAILED one (the model failed, or its instance died) is resumed, without
 * storing the user message again, unless a later message has been sent since.
 */
async function retryTurn(assistant: Assistant, send: Send, original: OpenedTurn): Promise<TurnResult> {
  const { userMessage } = original;
  if (send.conversationId !== undefined && send.conversationId !== userMessage.conversationId) {
    throw badInput("input.clientMessageId", "was already used for a message in another conversation");
  }
  if (userMessage.content !== send.content) {
    throw badInput("input.clientMessageId", "was already used for a different message");
  }
  let turn = original.turn;
  // Each pass moves the turn on (RUNNING → ended, FAILED → RUNNING); a few passes settle any race.
  for (let pass = 0; pass < 4; pass += 1) {
    if (turn.status !== "RUNNING" && turn.status !== "FAILED") return result(assistant, userMessage, turn);
    const step =
      turn.status === "RUNNING" ? await joinRunning(assistant, send, userMessage, turn) : await resumeFailed(assistant, send, userMessage, turn);
    if ("done" in step) return step.done;
    turn = step.again;
  }
  return result(assistant, userMessage, turn);
}

/**
 * One pass of retryTurn: its answer, or the turn to look at again because it moved on meanwhile.
 * The answer is the promise itself, returned as the loop used to return it, so a failure while
 * reading it is not taken for a failure of the restart (which would hand the lease back twice).
 */
type RetryStep = { done: Promise<TurnResult> } | { again: Turn };

/** A RUNNING turn is waited for (with waitForReply), unless its instance died: then it is looked at again. */
async function joinRunning(assistant: Assistant, send: Send, userMessage: Message, turn: Turn): Promise<RetryStep> {
  if (await interruptIfDead(assistant.db, send.userId, turn.id)) return { again: await getTurn(assistant.db, send.userId, turn.id) };
  if (!send.waitForReply) return { done: result(assistant, userMessage, turn) };
  const end = await assistant.waitForEnd(send.userId, turn.id, userMessage);
  if (end.turn?.status === "FAILED" && end.turn.stopCode === "INTERRUPTED") return { again: end.turn };
  return { done: settle(assistant, userMessage, end) };
}

/** A FAILED turn is restarted under a new lease, unless a later message was sent or someone resumed it first. */
async function resumeFailed(assistant: Assistant, send: Send, userMessage: Message, turn: Turn): Promise<RetryStep> {
  const { db } = assistant;
  const lease = await acquireLease(db, send.userId, userMessage.conversationId, leaseOptions(assistant));
  let restarted: Turn | null;
  try {
    // A later message has been sent since: its turn already showed this one to
    // the model, and an answer made now would land after it, outside this turn
    // (and again on every retry). Return the turn as it stands.
    if (await hasLaterUserMessage(db, userMessage.conversationId, userMessage.seq)) {
      await lease.release();
      return { done: result(assistant, userMessage, await getTurn(db, send.userId, turn.id)) };
    }
    restarted = await restartTurn(db, turn.id, lease.id);
  } catch (error) {
    await lease.release().catch(() => {});
    throw error;
  }
  if (!restarted) {
    // Someone resumed it first (and it ended meanwhile): look again.
    await lease.release();
    return { again: await getTurn(db, send.userId, turn.id) };
  }
  return { done: follow(assistant, send, userMessage, restarted, assistant.launch({ turn: restarted, userMessage, lease })) };
}

/** Answers at once (waitForReply: false) or when the turn has ended. */
async function follow(
  assistant: Assistant,
  send: Send,
  userMessage: Message,
  turn: Turn,
  done: Promise<TurnEnd>,
  conversation?: Conversation,
): Promise<TurnResult> {
  if (!send.waitForReply) return result(assistant, userMessage, turn, conversation && { conversation, messages: [userMessage] });
  return settle(assistant, userMessage, await done);
}

async function settle(assistant: Assistant, userMessage: Message, end: TurnEnd): Promise<TurnResult> {
  if (end.error !== undefined) throw end.error;
  if (!end.turn) throw new Error("a turn ended with neither a row nor an error");
  return result(assistant, userMessage, end.turn, end.held);
}

function isFinalReply(message: Message): boolean {
  return message.role === "assistant" && storedToolCalls(message).length === 0 && (message.status === "COMPLETE" || message.status === "CANCELLED");
}

/** The payload: from the rows the turn holds when it has them (its own end, or a send answered at once), else read. */
async function result(assistant: Assistant, userMessage: Message, turn: Turn, held?: TurnEnd["held"]): Promise<TurnResult> {
  const { db } = assistant;
  const [conversation, messages] = held
    ? [held.conversation, held.messages]
    : await Promise.all([getConversation(db, turn.userId, userMessage.conversationId), turnMessages(db, userMessage)]);
  const last = messages.at(-1);
  const reply = turn.status !== "RUNNING" && last && last.seq > userMessage.seq && isFinalReply(last) ? last : null;
  return { conversation, userMessage, messages, reply, stopCode: reply?.stopCode ?? null, turn };
}
