import { useEffect } from "react";
import { useMutation, useQuery, useSubscription } from "urql";
import type { ConnectionStore } from "./connection";
import { ConversationItem } from "./conversation-item";
import { CONVERSATION_CHANGED, CONVERSATIONS, CREATE_CONVERSATION, DELETE_CONVERSATION } from "./documents";
import { describeError } from "./errors";

/**
 * The viewer's conversations, most recent first: open, start, rename and delete. The
 * list follows conversationChanged (created, renamed, new activity, deleted,
 * from this tab, another one, the API or SQL); after a reconnect it is read
 * again, for whatever changed while the socket was away.
 */
export function Conversations(props: { selected: string | null; onSelect: (id: string | null) => void; connection: ConnectionStore }) {
  const [{ data, error }, reexecute] = useQuery({ query: CONVERSATIONS });
  const [, create] = useMutation(CREATE_CONVERSATION);
  const [, remove] = useMutation(DELETE_CONVERSATION);
  useSubscription({ query: CONVERSATION_CHANGED });
  const { connection, onSelect } = props;
  useEffect(() => connection.onReconnect(() => reexecute({ requestPolicy: "network-only" })), [connection, reexecute]);

  const startNew = async () => {
    const result = await create({});
    if (result.data) onSelect(result.data.createConversation.id);
  };
  const deleteOne = async (id: string) => {
    const result = await remove({ id });
    if (!result.error && props.selected === id) onSelect(null);
  };

  const conversations = data?.conversations.edges.map((edge) => edge.node) ?? [];
  return (
    <nav className="pane conversations" aria-labelledby="conversations-heading">
      <div className="pane-head">
        <h2 id="conversations-heading">Conversations</h2>
        <button type="button" data-testid="new-conversation" onClick={() => void startNew()}>
          New
        </button>
      </div>
      {error && !data && (
        <p role="alert" className="error">
          {describeError(error)}
        </p>
      )}
      <ul className="conversation-list">
        {conversations.map((conversation) => (
          <ConversationItem
            key={conversation.id}
            conversation={conversation}
            selected={conversation.id === props.selected}
            onSelect={() => onSelect(conversation.id)}
            onDelete={() => void deleteOne(conversation.id)}
          />
        ))}
      </ul>
      {data && conversations.length === 0 && <p className="empty">No conversations yet: say something to the assistant.</p>}
    </nav>
  );
}
