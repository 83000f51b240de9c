import { useEffect, useState } from "react";
import { newClientMessageId, type Problem, type PendingSend, type Sender } from "./chat-send";
import type { ConversationLog, TurnView } from "./conversation-log";

/** What went wrong, with Retry where a retry can help: a turn that failed after sendMessage answered, then the send's own problem. */
export function ChatProblems({ log, sender, conversationId }: { log: ConversationLog; sender: Sender; conversationId: string | null }) {
  const { problem, send } = sender;
  // The conversation's last turn failed (the model was unavailable, its server went away): it can be resumed, after a reload too.
  const turn = log.turn;
  const retry = turn?.status === "FAILED" && problem === undefined ? resumeSend(turn, conversationId) : undefined;
  return (
    <>
      {turn && retry && <ProblemBar message={turnFailure(turn.stopCode)} onRetry={() => void send(retry)} />}
      {problem && <ProblemView problem={problem} onRetry={(pending) => void send(pending)} />}
    </>
  );
}

/**
 * The send that resumes a failed turn: its user message as the server keeps
 * it, with the clientMessageId it was sent with, so the server resumes that
 * turn instead of storing the message again; the id is read back from the
 * server, so the Retry works after a reload or on another device. A message
 * sent without one (by another client) is sent again as a new message.
 */
function resumeSend(turn: TurnView, conversationId: string | null): PendingSend {
  const { content, clientMessageId } = turn.userMessage;
  return { content, conversationId, clientMessageId: clientMessageId ?? newClientMessageId() };
}

function turnFailure(stopCode: string | null): string {
  if (stopCode === "ASSISTANT_UNAVAILABLE") return "The assistant is unavailable right now (ASSISTANT_UNAVAILABLE); your message is saved.";
  if (stopCode === "INTERRUPTED") return "The server running the assistant went away (INTERRUPTED); your message is saved.";
  return `The assistant could not finish (${stopCode ?? "FAILED"}).`;
}

function ProblemBar(props: { message: string; onRetry?: (() => void) | undefined; retryLabel?: string; disabled?: boolean }) {
  return (
    <div className="problem" role="alert">
      <span>{props.message}</span>
      {props.onRetry && (
        <button type="button" onClick={props.onRetry} disabled={props.disabled}>
          {props.retryLabel ?? "Retry"}
        </button>
      )}
    </div>
  );
}

function ProblemView({ problem, onRetry }: { problem: Problem; onRetry: (pending: PendingSend) => void }) {
  const [now, setNow] = useState(Date.now());
  const waiting = problem.kind === "rate-limited" && problem.retryAt > now;
  useEffect(() => {
    if (!waiting) return;
    const timer = setInterval(() => setNow(Date.now()), 500);
    return () => clearInterval(timer);
  }, [waiting]);
  if (problem.kind === "other") return <ProblemBar message={problem.message} />;
  if (problem.kind === "rate-limited") {
    const seconds = Math.max(0, Math.ceil((problem.retryAt - now) / 1000));
    const message = waiting ? `Too many messages: you can send again in ${seconds} s.` : "You can send again now.";
    return <ProblemBar message={message} onRetry={() => onRetry(problem.send)} retryLabel="Send again" disabled={waiting} />;
  }
  return <ProblemBar message={problem.message} onRetry={() => onRetry(problem.send)} />;
}
