import { useEffect, useId, useLayoutEffect, useRef, useState, type FormEvent, type KeyboardEvent } from "react";
import { useClient, type CombinedError } from "urql";
import type { ConnectionStore } from "./connection";
import { useConversationLog, type ChatMessage, type ConversationLog } from "./conversation-log";
import { CANCEL_TURN, SEND_MESSAGE } from "./documents";
import { describeError, errorCode } from "./errors";
import { ToolChip } from "./tool-chip";

/** A send the user may retry: the same clientMessageId, so the server never stores it twice. */
interface PendingSend {
  clientMessageId: string;
  content: string;
  conversationId: string | null;
}

type Problem =
  | { kind: "rate-limited"; retryAt: number; send: PendingSend }
  | { kind: "retryable"; message: string; send: PendingSend }
  | { kind: "other"; message: string };

const NEAR_BOTTOM_PX = 80;
const NEAR_TOP_PX = 60;

function newClientMessageId(): string {
  return crypto.randomUUID();
}

/** The chat: messages paged back on scroll, answers streaming in, Stop while a turn runs. */
export function Chat(props: { conversationId: string | null; onConversation: (id: string) => void; connection: ConnectionStore }) {
  const client = useClient();
  const log = useConversationLog(props.conversationId, props.connection);
  const [draft, setDraft] = useState("");
  const [sending, setSending] = useState(false);
  const [problem, setProblem] = useState<Problem>();
  const lastSend = useRef<PendingSend | undefined>(undefined);
  const inputId = useId();

  // A new conversation from the list: what was wrong in the other one no longer applies.
  useEffect(() => setProblem(undefined), [props.conversationId]);

  const send = async (pending: PendingSend) => {
    setSending(true);
    lastSend.current = pending;
    const input = {
      content: pending.content,
      clientMessageId: pending.clientMessageId,
      waitForReply: false,
      ...(pending.conversationId === null ? {} : { conversationId: pending.conversationId }),
    };
    const result = await client.mutation(SEND_MESSAGE, { input }).toPromise();
    setSending(false);
    const payload = result.data?.sendMessage;
    if (payload) {
      setProblem(undefined);
      setDraft((current) => (current === pending.content ? "" : current));
      // The user's message is in the cache already (cache.ts); the turn is followed from here on.
      log.follow(payload.turn, payload.conversation.id);
      if (payload.conversation.id !== props.conversationId) props.onConversation(payload.conversation.id);
      return;
    }
    setProblem(problemFrom(result.error, pending));
  };

  const submit = (event?: FormEvent) => {
    event?.preventDefault();
    if (draft.trim() === "" || sending || log.turn?.status === "RUNNING") return;
    void send({ clientMessageId: newClientMessageId(), content: draft, conversationId: props.conversationId });
  };

  const onKeyDown = (event: KeyboardEvent<HTMLTextAreaElement>) => {
    // Enter sends; Shift+Enter is a new line; an IME composition is left alone.
    if (event.key === "Enter" && !event.shiftKey && !event.nativeEvent.isComposing) {
      event.preventDefault();
      submit();
    }
  };

  const stop = async () => {
    if (!log.turn) return;
    // The cancelled turn lands in the cache, which the turn bar reads.
    const result = await client.mutation(CANCEL_TURN, { id: log.turn.id }).toPromise();
    if (result.error) setProblem({ kind: "other", message: describeError(result.error) });
  };

  // A turn that failed after sendMessage answered (the model was unavailable, its server went away) can be resumed.
  const turn = log.turn;
  const failedTurn = turn?.status === "FAILED" && lastSend.current !== undefined && problem === undefined;
  const running = turn?.status === "RUNNING";

  return (
    <section className="pane chat" aria-labelledby="chat-heading">
      <h2 id="chat-heading">Chat</h2>
      <MessageList log={log} conversationId={props.conversationId} />
      {running && (
        <div className="turn-bar">
          <span className="typing" aria-live="polite">
            The assistant is working…
          </span>
          <button type="button" data-testid="chat-stop" className="stop" onClick={() => void stop()}>
            Stop
          </button>
        </div>
      )}
      {failedTurn && lastSend.current && (
        <ProblemBar message={turnFailure(turn.stopCode)} onRetry={() => void send(lastSend.current as PendingSend)} />
      )}
      {problem && <ProblemView problem={problem} onRetry={(pending) => void send(pending)} />}
      <form className="composer" onSubmit={submit}>
        <label htmlFor={inputId} className="visually-hidden">
          Message the assistant
        </label>
        <textarea
          id={inputId}
          data-testid="chat-input"
          rows={2}
          maxLength={5000}
          value={draft}
          aria-describedby={`${inputId}-keys`}
          placeholder="Ask the assistant…"
          onChange={(event) => setDraft(event.target.value)}
          onKeyDown={onKeyDown}
        />
        <button type="submit" data-testid="chat-send" disabled={sending || running || draft.trim() === ""}>
          Send
        </button>
        <p id={`${inputId}-keys`} className="keys">
          Enter sends · Shift+Enter starts a new line
        </p>
      </form>
    </section>
  );
}

function turnFailure(stopCode: string | null): string {
  if (stopCode === "ASSISTANT_UNAVAILABLE") return "The assistant is unavailable right now (ASSISTANT_UNAVAILABLE); your message is saved.";
  if (stopCode === "INTERRUPTED") return "The server running the assistant went away (INTERRUPTED); your message is saved.";
  return `The assistant could not finish (${stopCode ?? "FAILED"}).`;
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

function MessageList({ log, conversationId }: { log: ConversationLog; conversationId: string | null }) {
  const ref = useRef<HTMLOListElement>(null);
  const stick = useRef(true);
  const anchor = useRef<{ height: number; top: number } | undefined>(undefined);
  const firstId = log.messages[0]?.id;
  const toolNames = new Map(log.messages.flatMap((m) => m.toolCalls.map((call) => [call.id, call.name] as const)));

  const onScroll = () => {
    const element = ref.current;
    if (!element) return;
    stick.current = element.scrollHeight - element.scrollTop - element.clientHeight < NEAR_BOTTOM_PX;
    if (element.scrollTop < NEAR_TOP_PX && log.hasOlder && !log.loadingOlder) loadOlder();
  };
  const loadOlder = () => {
    const element = ref.current;
    if (element) anchor.current = { height: element.scrollHeight, top: element.scrollTop };
    log.loadOlder();
  };

  // Older messages were put above: keep what the reader was looking at in place.
  useLayoutEffect(() => {
    const element = ref.current;
    if (!element) return;
    if (anchor.current) {
      element.scrollTop = anchor.current.top + (element.scrollHeight - anchor.current.height);
      anchor.current = undefined;
    } else if (stick.current) {
      element.scrollTop = element.scrollHeight;
    }
  }, [log.messages, firstId]);

  useEffect(() => {
    stick.current = true;
  }, [conversationId]);

  // A resized list (a rotated phone, a narrower window) keeps the newest message in view if it was.
  useEffect(() => {
    const element = ref.current;
    if (!element) return;
    const observer = new ResizeObserver(() => {
      if (stick.current) element.scrollTop = element.scrollHeight;
    });
    observer.observe(element);
    return () => observer.disconnect();
  }, [log.error]);

  if (log.error) return <p className="error" role="alert">{log.error}</p>;
  return (
    <ol className="messages" ref={ref} onScroll={onScroll} aria-label="Messages" aria-busy={conversationId !== null && !log.loaded} tabIndex={0}>
      {log.hasOlder && (
        <li className="older">
          <button type="button" onClick={loadOlder} disabled={log.loadingOlder}>
            {log.loadingOlder ? "Loading…" : "Load earlier messages"}
          </button>
        </li>
      )}
      {conversationId === null && <li className="hint">Start a conversation: ask the assistant to add, complete or list your tasks.</li>}
      {log.messages.map((message) => (
        <MessageItem key={message.id} message={message} toolNames={toolNames} />
      ))}
    </ol>
  );
}

const ROLE_LABELS = { USER: "You", ASSISTANT: "Assistant", TOOL: "Tool" } as const;

function MessageItem({ message, toolNames }: { message: ChatMessage; toolNames: ReadonlyMap<string, string> }) {
  const role = message.role.toLowerCase();
  return (
    <li className={`message message-${role} message-${message.status.toLowerCase()}`} data-testid="chat-message" data-role={role} data-status={message.status} data-message-id={message.id} data-seq={message.seq}>
      <span className="visually-hidden">{ROLE_LABELS[message.role]}: </span>
      {message.role === "TOOL" ? (
        <span className="tool-result-line">↳ {toolNames.get(message.toolCallId ?? "") ?? "tool"} answered</span>
      ) : (
        message.content !== "" && <div className="content">{message.content}</div>
      )}
      {message.toolCalls.length > 0 && (
        <div className="chips">
          {message.toolCalls.map((call) => (
            <ToolChip key={call.id} call={call} />
          ))}
        </div>
      )}
      {message.status === "STREAMING" && <span className="cursor" aria-hidden="true" />}
      {message.status === "CANCELLED" && <span className="badge">stopped</span>}
      {message.status === "FAILED" && <span className="badge badge-error">failed</span>}
    </li>
  );
}
