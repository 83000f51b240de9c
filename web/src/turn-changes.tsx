import { useEffect, useId, useRef, useState } from "react";
import { useMutation, useQuery } from "urql";
import { TURN_CHANGES, UNDO_TURN } from "./documents";
import { describeError } from "./errors";
import { useTaskChangeCount } from "./task-change-signal";
import { describeEvent } from "./task-event-text";

/**
 * Under an assistant reply whose turn changed tasks: what it changed, and an
 * Undo. The server says whether the undo would succeed now (Turn.undoCheck);
 * when it would not (a task changed since, the turn still running), the
 * button is disabled and the reason shown beside it. Read again whenever a
 * task changes anywhere and whenever the turn's messages grow.
 */
export function TurnChanges({ turnId, messages }: { turnId: string; messages: number }) {
  const changes = useTaskChangeCount();
  const [{ data }, reexecute] = useQuery({ query: TURN_CHANGES, variables: { id: turnId }, requestPolicy: "cache-and-network" });
  const [undoing, undo] = useMutation(UNDO_TURN);
  const [problem, setProblem] = useState<string>();
  const reasonId = useId();
  const mounted = useRef(false);
  useEffect(() => {
    if (mounted.current) reexecute({ requestPolicy: "network-only" });
    mounted.current = true;
  }, [changes, messages, reexecute]);

  const turn = data?.node && "taskEvents" in data.node ? data.node : null;
  if (!turn || turn.taskEvents.length === 0) return null;
  const undone = turn.undoneAt !== null;
  const blocked = !turn.undoCheck.canUndo && turn.undoCheck.reason !== null;
  const onUndo = async () => {
    const answer = await undo({ id: turnId });
    setProblem(answer.error ? describeError(answer.error) : undefined);
    reexecute({ requestPolicy: "network-only" });
  };
  return (
    <li className="turn-changes" data-testid="turn-changes" data-turn-id={turnId} data-undone={String(undone)}>
      <span className="turn-changes-title">{undone ? "Undone:" : "Changed:"}</span>
      <ul>
        {turn.taskEvents.map((event) => (
          <li key={event.id} data-testid="turn-change">
            {describeEvent(event)}
          </li>
        ))}
      </ul>
      {!undone && (
        <div className="undo">
          <button
            type="button"
            data-testid="turn-undo"
            disabled={!turn.undoCheck.canUndo || undoing.fetching}
            aria-describedby={blocked ? reasonId : undefined}
            onClick={() => void onUndo()}
          >
            Undo
          </button>
          {blocked && (
            <span id={reasonId} className="undo-reason" data-testid="turn-undo-reason">
              {turn.undoCheck.reason}
            </span>
          )}
        </div>
      )}
      {problem && (
        <p role="alert" className="error">
          {problem}
        </p>
      )}
    </li>
  );
}
