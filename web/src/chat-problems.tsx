import { useEffect, useState } from "react";
import type { Problem, PendingSend, Sender } from "./chat-send";
import type { ConversationLog } from "./conversation-log";

/** What went wrong, with Retry where a retry can help: a turn that failed after sendMessage answered, then the send's own problem. */
export function ChatProblems({ log, sender }: { log: ConversationLog; sender: Sender }) {
  const { problem, lastSend, send } = sender;
  // A turn that failed after sendMessage answered (the model was unavailable, its server went away) can be resumed.
  const turn = log.turn;
  const failedTurn = turn?.status === "FAILED" && lastSend.current !== undefined && problem === undefined;
  return (
    <>
      {failedTurn && lastSend.current && (
        <ProblemBar message={turnFailure(turn.stopCode)} onRetry={() => void send(lastSend.current as PendingSend)} />
      )}
      {problem && <ProblemView problem={problem} onRetry={(pending) => void send(pending)} />}
    </>
  );
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
