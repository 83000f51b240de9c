import { useEffect, useState } from "react";
import { useClient, type CombinedError } from "urql";
import type { ConversationLog } from "./conversation-log";
import { SEND_MESSAGE } from "./documents";
import { describeError, errorCode } from "./errors";

/** A send the user may retry: the same clientMessageId, so the server never stores it twice. */
export interface PendingSend {
  clientMessageId: string;
  content: string;
  conversationId: string | null;
}

export type Problem =
  | { kind: "rate-limited"; retryAt: number; send: PendingSend }
  | { kind: "retryable"; message: string; send: PendingSend }
  | { kind: "other"; message: string };

export interface Sender {
  sending: boolean;
  /** What went wrong with the last send or stop, until the next success or another conversation. */
  problem: Problem | undefined;
  setProblem: (problem: Problem | undefined) => void;
  send: (pending: PendingSend) => Promise<void>;
}

export function newClientMessageId(): string {
  return crypto.randomUUID();
}

/**
 * sendMessage without waiting for the reply: on success the turn is followed and `onSent` runs;
 * on failure the problem says whether (and when) the same send may be retried.
 */
export function useSender(
  conversationId: string | null,
  onConversation: (id: string) => void,
  log: ConversationLog,
  onSent: (pending: PendingSend) => void,
): Sender {
  const client = useClient();
  const [sending, setSending] = useState(false);
  const [problem, setProblem] = useState<Problem>();

  // A new conversation from the list: what was wrong in the other one no longer applies.
  useEffect(() => setProblem(undefined), [conversationId]);

  const send = async (pending: PendingSend) => {
    setSending(true);
    const result = await client.mutation(SEND_MESSAGE, { input: sendInput(pending) }).toPromise();
    setSending(false);
    const payload = result.data?.sendMessage;
    if (payload) {
      setProblem(undefined);
      onSent(pending);
      // The user's message is in the cache already (cache.ts); the turn is followed from here on.
      log.follow(payload.turn, payload.conversation.id);
      if (payload.conversation.id !== conversationId) onConversation(payload.conversation.id);
      return;
    }
    setProblem(problemFrom(result.error, pending));
  };

  return { sending, problem, setProblem, send };
}

function sendInput(pending: PendingSend) {
  return {
    content: pending.content,
    clientMessageId: pending.clientMessageId,
    waitForReply: false,
    ...(pending.conversationId === null ? {} : { conversationId: pending.conversationId }),
  };
}

function problemFrom(error: CombinedError | undefined, pending: PendingSend): Problem {
  if (!error) return { kind: "other", message: "No answer from the server." };
  const code = errorCode(error);
  const extensions = error.graphQLErrors[0]?.extensions ?? {};
  if (code === "RATE_LIMITED") {
    const seconds = typeof extensions.retryAfter === "number" ? extensions.retryAfter : 5;
    return { kind: "rate-limited", retryAt: Date.now() + seconds * 1000, send: pending };
  }
  // The message is stored: a retry must land in the conversation that the failed send created.
  const conversationId = typeof extensions.conversationId === "string" ? extensions.conversationId : pending.conversationId;
  if (code === "ASSISTANT_UNAVAILABLE" || code === "SERVICE_UNAVAILABLE") {
    return { kind: "retryable", message: describeError(error), send: { ...pending, conversationId } };
  }
  if (error.networkError && error.graphQLErrors.length === 0) return { kind: "retryable", message: describeError(error), send: pending };
  return { kind: "other", message: describeError(error) };
}
