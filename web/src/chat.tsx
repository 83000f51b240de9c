import { useId, useState, type FormEvent, type KeyboardEvent } from "react";
import { useClient } from "urql";
import { ApprovalCards } from "./approval-cards";
import { ChatProblems } from "./chat-problems";
import { newClientMessageId, useSender, type Problem } from "./chat-send";
import type { ConnectionStore } from "./connection";
import { useConversationLog } from "./conversation-log";
import { CANCEL_TURN } from "./documents";
import { describeError } from "./errors";
import { MessageList } from "./message-list";

/** The chat: messages paged back on scroll, answers streaming in, Stop while a turn runs, approval cards while it waits. */
export function Chat(props: { conversationId: string | null; onConversation: (id: string) => void; connection: ConnectionStore }) {
  const log = useConversationLog(props.conversationId, props.connection);
  const [draft, setDraft] = useState("");
  // A send that went through empties the composer, unless the user has typed something else since.
  const sender = useSender(props.conversationId, props.onConversation, log, (sent) =>
    setDraft((current) => (current === sent.content ? "" : current)),
  );
  const running = log.turn?.status === "RUNNING";
  const inputId = useId();

  const submit = () => {
    if (draft.trim() === "" || sender.sending || running) return;
    void sender.send({ clientMessageId: newClientMessageId(), content: draft, conversationId: props.conversationId });
  };

  return (
    <section className="pane chat" aria-labelledby="chat-heading">
      <h2 id="chat-heading">Chat</h2>
      <MessageList log={log} conversationId={props.conversationId} />
      {running && log.turn && <TurnBar turnId={log.turn.id} onProblem={sender.setProblem} />}
      {log.turn?.status === "REQUIRES_ACTION" && <ApprovalCards turn={log.turn} />}
      <ChatProblems log={log} sender={sender} conversationId={props.conversationId} />
      <Composer inputId={inputId} draft={draft} onDraft={setDraft} onSubmit={submit} disabled={sender.sending || running || draft.trim() === ""} />
    </section>
  );
}

/** While a turn runs: says so, and Stop cancels it. */
function TurnBar({ turnId, onProblem }: { turnId: string; onProblem: (problem: Problem) => void }) {
  const client = useClient();
  const stop = async () => {
    // The cancelled turn lands in the cache, which the turn bar reads.
    const result = await client.mutation(CANCEL_TURN, { id: turnId }).toPromise();
    if (result.error) onProblem({ kind: "other", message: describeError(result.error) });
  };
  return (
    <div className="turn-bar">
      <span className="typing" aria-live="polite">
        The assistant is working…
      </span>
      <button type="button" data-testid="chat-stop" className="stop" onClick={() => void stop()}>
        Stop
      </button>
    </div>
  );
}

/** The message box: Enter sends, Shift+Enter is a new line. */
function Composer(props: { inputId: string; draft: string; onDraft: (draft: string) => void; onSubmit: () => void; disabled: boolean }) {
  const { inputId } = props;
  const submit = (event: FormEvent) => {
    event.preventDefault();
    props.onSubmit();
  };
  const onKeyDown = (event: KeyboardEvent<HTMLTextAreaElement>) => {
    // Enter sends; Shift+Enter is a new line; an IME composition is left alone.
    if (event.key === "Enter" && !event.shiftKey && !event.nativeEvent.isComposing) {
      event.preventDefault();
      props.onSubmit();
    }
  };
  return (
    <form className="composer" onSubmit={submit}>
      <label htmlFor={inputId} className="visually-hidden">
        Message the assistant
      </label>
      <textarea
        id={inputId}
        data-testid="chat-input"
        rows={2}
        maxLength={5000}
        value={props.draft}
        aria-describedby={`${inputId}-keys`}
        placeholder="Ask the assistant…"
        onChange={(event) => props.onDraft(event.target.value)}
        onKeyDown={onKeyDown}
      />
      <button type="submit" data-testid="chat-send" disabled={props.disabled}>
        Send
      </button>
      <p id={`${inputId}-keys`} className="keys">
        Enter sends · Shift+Enter starts a new line
      </p>
    </form>
  );
}
