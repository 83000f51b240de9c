import { useEffect, useId, useState, type FormEvent, type KeyboardEvent } from "react";
import { useMutation, useQuery, useSubscription } from "urql";
import type { ConnectionStore } from "./connection";
import { ADD_TASK, COMPLETE_TASK, DELETE_TASK, TASK_CHANGED, TASKS, UPDATE_TASK } from "./documents";
import { describeError } from "./errors";
import type { ResultOf } from "./graphql";
import { useTaskHistoryToggle } from "./task-history";

type Filter = "ALL" | "PENDING" | "COMPLETED";
type Task = NonNullable<ResultOf<typeof TASKS>["tasks"]["edges"][number]>["node"];

const FILTERS: { value: Filter; label: string }[] = [
  { value: "ALL", label: "All" },
  { value: "PENDING", label: "Pending" },
  { value: "COMPLETED", label: "Completed" },
];

/** The viewer's tasks, live: taskChanged re-reads the list whoever made the change. */
export function TasksPane({ connection }: { connection: ConnectionStore }) {
  const [filter, setFilter] = useState<Filter>("ALL");
  const [{ data, error, fetching }, reexecute] = useQuery({ query: TASKS, variables: { status: filter } });
  // Its results land in the cache, whose update re-reads the lists.
  useSubscription({ query: TASK_CHANGED });
  // Changes made while the socket was down sent no event: read the list again.
  useEffect(() => connection.onReconnect(() => reexecute({ requestPolicy: "network-only" })), [connection, reexecute]);

  const tasks = data?.tasks.edges.map((edge) => edge.node) ?? [];
  return (
    <section className="pane tasks" aria-labelledby="tasks-heading">
      <h2 id="tasks-heading">Tasks</h2>
      <AddTask />
      <div className="filters" role="group" aria-label="Show">
        {FILTERS.map((f) => (
          <button key={f.value} type="button" aria-pressed={filter === f.value} onClick={() => setFilter(f.value)}>
            {f.label}
          </button>
        ))}
      </div>
      {error && !data && (
        <p role="alert" className="error">
          {describeError(error)}
        </p>
      )}
      <ul className="task-list" data-testid="task-list" aria-busy={fetching && !data}>
        {tasks.map((task) => (
          <TaskItem key={task.id} task={task} />
        ))}
      </ul>
      {data && tasks.length === 0 && <p className="empty">{filter === "ALL" ? "No tasks yet." : `No ${filter.toLowerCase()} tasks.`}</p>}
    </section>
  );
}

function AddTask() {
  const [title, setTitle] = useState("");
  const [result, addTask] = useMutation(ADD_TASK);
  const [problem, setProblem] = useState<string>();
  const id = useId();
  const submit = async (event: FormEvent) => {
    event.preventDefault();
    if (title.trim() === "") return;
    const answer = await addTask({ input: { title } });
    if (answer.error) return setProblem(describeError(answer.error));
    setProblem(undefined);
    setTitle("");
  };
  return (
    <form className="add-task" onSubmit={submit}>
      <label htmlFor={id}>New task</label>
      <div className="row">
        <input
          id={id}
          data-testid="new-task-title"
          value={title}
          maxLength={200}
          onChange={(event) => setTitle(event.target.value)}
          placeholder="Buy milk"
        />
        <button type="submit" data-testid="add-task" disabled={result.fetching}>
          Add
        </button>
      </div>
      {problem && (
        <p role="alert" className="error">
          {problem}
        </p>
      )}
    </form>
  );
}

/** One task's mutations and its edit state: what TaskItem shows, apart from how it shows it. */
function useTaskActions(task: Task) {
  const [, complete] = useMutation(COMPLETE_TASK);
  const [, update] = useMutation(UPDATE_TASK);
  const [, removeTask] = useMutation(DELETE_TASK);
  const [editing, setEditing] = useState(false);
  const [draft, setDraft] = useState(task.title);
  const [problem, setProblem] = useState<string>();

  const run = async (operation: Promise<{ error?: Parameters<typeof describeError>[0] | undefined }>) => {
    const { error } = await operation;
    setProblem(error ? describeError(error) : undefined);
    return !error;
  };
  const toggle = () => run(task.completed ? update({ input: { id: task.id, completed: false } }) : complete({ id: task.id }));
  const save = async () => {
    if (draft.trim() === "" || draft === task.title) return setEditing(false);
    if (await run(update({ input: { id: task.id, title: draft } }))) setEditing(false);
  };
  const onKey = (event: KeyboardEvent<HTMLInputElement>) => {
    if (event.key === "Enter") void save();
    if (event.key === "Escape") {
      setDraft(task.title);
      setEditing(false);
    }
  };
  const startEditing = () => (setDraft(task.title), setEditing(true));
  const remove = () => run(removeTask({ id: task.id }));
  return { editing, draft, setDraft, problem, toggle, save, onKey, startEditing, remove };
}

function TaskItem({ task }: { task: Task }) {
  const { editing, draft, setDraft, problem, toggle, save, onKey, startEditing, remove } = useTaskActions(task);
  const checkboxId = useId();
  const history = useTaskHistoryToggle(task.id, task.title);

  return (
    <li className="task" data-testid="task-item" data-task-id={task.id} data-completed={String(task.completed)}>
      <input id={checkboxId} type="checkbox" data-testid="task-toggle" checked={task.completed} onChange={() => void toggle()} />
      {editing ? (
        <input
          className="task-edit"
          aria-label={`Title of ${task.title}`}
          value={draft}
          maxLength={200}
          autoFocus
          onChange={(e) => setDraft(e.target.value)}
          onKeyDown={onKey}
        />
      ) : (
        <label htmlFor={checkboxId} className="task-title">
          {task.title}
        </label>
      )}
      <div className="task-actions">
        {editing ? (
          <button type="button" onClick={() => void save()}>
            Save
          </button>
        ) : (
          <button type="button" aria-label={`Edit ${task.title}`} onClick={startEditing}>
            Edit
          </button>
        )}
        <button type="button" data-testid="task-delete" aria-label={`Delete ${task.title}`} onClick={() => void remove()}>
          Delete
        </button>
        {history.button}
      </div>
      {history.panel}
      {problem && (
        <p role="alert" className="error">
          {problem}
        </p>
      )}
    </li>
  );
}
