import { useEffect, useLayoutEffect, useRef, type RefObject } from "react";
import type { ChatMessage, ConversationLog } from "./conversation-log";
import { ToolChip } from "./tool-chip";

const NEAR_BOTTOM_PX = 80;
const NEAR_TOP_PX = 60;

/** The conversation's messages, newest at the bottom; older ones load as the reader scrolls up. */
export function MessageList({ log, conversationId }: { log: ConversationLog; conversationId: string | null }) {
  const { ref, onScroll, loadOlder } = useMessageScroll(log, conversationId);
  const toolNames = new Map(log.messages.flatMap((m) => m.toolCalls.map((call) => [call.id, call.name] as const)));

  if (log.error)
    return (
      <p className="error" role="alert">
        {log.error}
      </p>
    );
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

/**
 * Where the list is scrolled: it sticks to the newest message while the reader is near the bottom,
 * loads older messages near the top, and keeps what the reader was looking at in place when they arrive.
 */
function useMessageScroll(log: ConversationLog, conversationId: string | null) {
  const ref = useRef<HTMLOListElement>(null);
  const stick = useRef(true);
  const anchor = useRef<{ height: number; top: number } | undefined>(undefined);
  const firstId = log.messages[0]?.id;

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

  useStickOnResize(ref, stick, log.error);
  return { ref, onScroll, loadOlder };
}

/** A resized list (a rotated phone, a narrower window) keeps the newest message in view if it was. */
function useStickOnResize(ref: RefObject<HTMLOListElement | null>, stick: RefObject<boolean>, error: string | undefined) {
  // The list is not rendered while there is an error: observe it again once it is back.
  useEffect(() => {
    const element = ref.current;
    if (!element) return;
    const observer = new ResizeObserver(() => {
      if (stick.current) element.scrollTop = element.scrollHeight;
    });
    observer.observe(element);
    return () => observer.disconnect();
  }, [error]);
}

const ROLE_LABELS = { USER: "You", ASSISTANT: "Assistant", TOOL: "Tool" } as const;

function MessageItem({ message, toolNames }: { message: ChatMessage; toolNames: ReadonlyMap<string, string> }) {
  const role = message.role.toLowerCase();
  return (
    <li
      className={`message message-${role} message-${message.status.toLowerCase()}`}
      data-testid="chat-message"
      data-role={role}
      data-status={message.status}
      data-message-id={message.id}
      data-seq={message.seq}
    >
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
