import { useState, type FormEvent, type KeyboardEvent } from "react";
import { useMutation } from "urql";
import { UPDATE_CONVERSATION } from "./documents";
import { describeError } from "./errors";

interface ConversationItemProps {
  conversation: { id: string; title: string | null };
  selected: boolean;
  onSelect: () => void;
  onDelete: () => void;
}

/** One conversation in the list: open it, rename it in place (Enter saves, Escape cancels), delete it. */
export function ConversationItem({ conversation, selected, onSelect, onDelete }: ConversationItemProps) {
  const [renaming, setRenaming] = useState(false);
  const name = conversation.title || "Untitled conversation";
  return (
    <li data-testid="conversation-item" className={selected ? "selected" : undefined}>
      {renaming ? (
        <RenameForm conversation={conversation} name={name} onDone={() => setRenaming(false)} />
      ) : (
        <>
          <button type="button" className="open" aria-current={selected ? "page" : undefined} onClick={onSelect}>
            {name}
          </button>
          <button
            type="button"
            className="icon"
            data-testid="conversation-rename"
            aria-label={`Rename conversation ${conversation.title || "Untitled"}`}
            onClick={() => setRenaming(true)}
          >
            ✎
          </button>
          <button type="button" className="delete" aria-label={`Delete conversation ${conversation.title || "Untitled"}`} onClick={onDelete}>
            ×
          </button>
        </>
      )}
    </li>
  );
}

/** The title in a text box; a blank title clears it (the server's rule). The list itself follows from conversationChanged. */
function RenameForm({ conversation, name, onDone }: { conversation: { id: string; title: string | null }; name: string; onDone: () => void }) {
  const [draft, setDraft] = useState(conversation.title ?? "");
  const [problem, setProblem] = useState<string>();
  const [result, rename] = useMutation(UPDATE_CONVERSATION);
  const save = async (event: FormEvent) => {
    event.preventDefault();
    if (draft === (conversation.title ?? "")) return onDone();
    const { error } = await rename({ input: { id: conversation.id, title: draft } });
    if (error) return setProblem(describeError(error));
    onDone();
  };
  const onKey = (event: KeyboardEvent) => {
    if (event.key === "Escape") onDone();
  };
  return (
    <form className="rename" onSubmit={save} onKeyDown={onKey}>
      <input
        data-testid="conversation-title-input"
        aria-label={`New title for ${name}`}
        value={draft}
        maxLength={200}
        autoFocus
        onChange={(event) => setDraft(event.target.value)}
      />
      <button type="submit" data-testid="conversation-rename-save" disabled={result.fetching}>
        Save
      </button>
      {problem && (
        <p role="alert" className="error">
          {problem}
        </p>
      )}
    </form>
  );
}
