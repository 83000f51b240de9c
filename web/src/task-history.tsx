import { useEffect, useId, useRef, useState, type ReactNode } from "react";
import { useQuery } from "urql";
import { TASK_HISTORY } from "./documents";
import { describeError } from "./errors";
import { useTaskChangeCount } from "./task-change-signal";
import { ACTOR_LABELS, describeEvent } from "./task-event-text";

/** A task's "History" button, and its recorded changes (newest first, who made each) once opened: placed apart, the list on a row of its own. */
export function useTaskHistoryToggle(taskId: string, title: string): { button: ReactNode; panel: ReactNode } {
  const [open, setOpen] = useState(false);
  const panelId = useId();
  const button = (
    <button
      type="button"
      data-testid="task-history-toggle"
      aria-expanded={open}
      aria-controls={panelId}
      aria-label={`History of ${title}`}
      onClick={() => setOpen(!open)}
    >
      History
    </button>
  );
  return { button, panel: open ? <TaskHistory id={panelId} taskId={taskId} /> : null };
}

function TaskHistory({ id, taskId }: { id: string; taskId: string }) {
  const changes = useTaskChangeCount();
  const [{ data, error, fetching }, reexecute] = useQuery({ query: TASK_HISTORY, variables: { id: taskId }, requestPolicy: "network-only" });
  const mounted = useRef(false);
  useEffect(() => {
    if (mounted.current) reexecute({ requestPolicy: "network-only" });
    mounted.current = true;
  }, [changes, reexecute]);

  const events = data?.task?.history.edges.map((edge) => edge.node) ?? [];
  if (error && !data) {
    return (
      <p id={id} role="alert" className="error">
        {describeError(error)}
      </p>
    );
  }
  return (
    <ol id={id} className="task-history" data-testid="task-history" aria-busy={fetching} aria-label="History">
      {events.map((event) => (
        <li key={event.id} data-testid="task-history-item" data-actor={event.actor} data-kind={event.kind}>
          <span className="actor">{ACTOR_LABELS[event.actor]}</span>: {describeEvent(event)}{" "}
          <time dateTime={event.at}>{new Date(event.at).toLocaleString()}</time>
        </li>
      ))}
    </ol>
  );
}
