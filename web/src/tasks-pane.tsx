import { useEffect } from "react";
import { useMutation, useQuery, useSubscription } from "urql";
import type { ConnectionStore } from "./connection";
import { ADD_TASK, TASK_CHANGED, TASKS, VIEWER } from "./documents";
import { describeError } from "./errors";
import { fieldProblem } from "./field-errors";
import { addInput, EMPTY_DRAFT, type TaskDraft } from "./task-draft";
import { TaskFilters } from "./task-filters";
import { TaskForm } from "./task-form";
import { TaskItem } from "./task-item";
import { DEFAULT_VIEW, taskVariables, useTaskView, type TaskView } from "./task-view";
import { useDebounced, useNow } from "./use-debounced";
import { knownZone } from "./zoned-date";

/** How long typing in the search or label box pauses before the list is asked for again. */
const TYPING_PAUSE_MS = 250;

/**
 * The viewer's tasks, live: taskChanged re-reads the list whoever made the
 * change. Filtered and ordered by the server (TaskFilter, TaskOrder), due
 * date first by default; tasks without one come after those with one.
 */
export function TasksPane({ connection }: { connection: ConnectionStore }) {
  const [view, setView] = useTaskView();
  const search = useDebounced(view.search, TYPING_PAUSE_MS);
  const label = useDebounced(view.label, TYPING_PAUSE_MS);
  const [{ data, error, fetching }, reexecute] = useQuery({ query: TASKS, variables: taskVariables({ ...view, search, label }) });
  const [viewer] = useQuery({ query: VIEWER });
  const viewerZone = viewer.data?.viewer.timezone;
  // A zone the server accepts but this browser's Intl does not know: shown in UTC, and said so.
  const zone = viewerZone === undefined || knownZone(viewerZone) ? viewerZone : "UTC";
  const now = useNow(30_000);
  // Its results land in the cache, whose update re-reads the lists.
  useSubscription({ query: TASK_CHANGED });
  // Changes made while the socket was down sent no event: read the list again.
  useEffect(() => connection.onReconnect(() => reexecute({ requestPolicy: "network-only" })), [connection, reexecute]);

  const tasks = data?.tasks.edges.map((edge) => edge.node) ?? [];
  return (
    <section className="pane tasks" aria-labelledby="tasks-heading">
      <h2 id="tasks-heading">Tasks</h2>
      {zone !== viewerZone && <p className="hint">This browser does not know your time zone ({viewerZone}): times are shown in UTC.</p>}
      <AddTask zone={zone} />
      <TaskFilters view={view} onChange={setView} />
      {error && !data && (
        <p role="alert" className="error">
          {describeError(error)}
        </p>
      )}
      <ul className="task-list" data-testid="task-list" aria-busy={fetching && !data}>
        {zone !== undefined &&
          tasks.map((task) => <TaskItem key={task.id} task={task} zone={zone} now={now} onLabel={(label) => setView({ label })} />)}
      </ul>
      {data && tasks.length === 0 && <p className="empty">{emptyText(view)}</p>}
    </section>
  );
}

function emptyText(view: TaskView): string {
  const filtered = view.search.trim() !== "" || view.priority !== "" || view.overdue || view.label.trim() !== "";
  if (filtered) return "No tasks match these filters.";
  return view.status === DEFAULT_VIEW.status ? "No tasks yet." : `No ${view.status.toLowerCase()} tasks.`;
}

function AddTask({ zone }: { zone: string | undefined }) {
  const [, addTask] = useMutation(ADD_TASK);
  const save = async (draft: TaskDraft) => {
    if (zone === undefined) return { field: undefined, message: "Still loading your time zone: try again in a moment." };
    const answer = await addTask({ input: addInput(draft, zone) });
    return answer.error ? fieldProblem(answer.error) : undefined;
  };
  return (
    <div className="add-task">
      <TaskForm mode="add" initial={EMPTY_DRAFT} titleLabel="New task" onSave={save} disabled={zone === undefined} />
    </div>
  );
}
