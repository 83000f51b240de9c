import { useId, useState } from "react";
import { useMutation } from "urql";
import { COMPLETE_TASK, DELETE_TASK, UPDATE_TASK, type TaskFields } from "./documents";
import { describeError } from "./errors";
import { fieldProblem } from "./field-errors";
import type { ResultOf } from "./graphql";
import { draftOf, updateInput, type TaskDraft } from "./task-draft";
import { dueDateTime, dueText, isOverdue } from "./task-due";
import { PRIORITY_NAMES, TaskForm } from "./task-form";
import { useTaskHistoryToggle } from "./task-history";

export type Task = ResultOf<typeof TaskFields>;

/** One task's mutations and its edit state: what TaskItem shows, apart from how it shows it. */
function useTaskActions(task: Task, zone: string) {
  const [, complete] = useMutation(COMPLETE_TASK);
  const [, update] = useMutation(UPDATE_TASK);
  const [, removeTask] = useMutation(DELETE_TASK);
  const [editing, setEditing] = useState(false);
  const [problem, setProblem] = useState<string>();

  const run = async (operation: Promise<{ error?: Parameters<typeof describeError>[0] | undefined }>) => {
    const { error } = await operation;
    setProblem(error ? describeError(error) : undefined);
    return !error;
  };
  const toggle = () => run(task.completed ? update({ input: { id: task.id, completed: false } }) : complete({ id: task.id }));
  const save = async (before: TaskDraft, after: TaskDraft) => {
    const input = updateInput(task.id, before, after, zone);
    const { error } = Object.keys(input).length === 1 ? {} : await update({ input });
    if (error) return fieldProblem(error);
    setEditing(false);
    return undefined;
  };
  const remove = () => run(removeTask({ id: task.id }));
  return { editing, setEditing, problem, toggle, save, remove };
}

interface TaskItemProps {
  task: Task;
  zone: string;
  now: number;
  /** Shows only the tasks with this label (a label chip clicked). */
  onLabel: (label: string) => void;
}

export function TaskItem({ task, zone, now, onLabel }: TaskItemProps) {
  const { editing, setEditing, problem, toggle, save, remove } = useTaskActions(task, zone);
  const checkboxId = useId();
  const history = useTaskHistoryToggle(task.id, task.title);
  const overdue = isOverdue(task, zone, now);
  const initial = draftOf(task, zone);

  return (
    <li className="task" data-testid="task-item" data-task-id={task.id} data-completed={String(task.completed)} data-overdue={String(overdue)}>
      <input id={checkboxId} type="checkbox" data-testid="task-toggle" checked={task.completed} onChange={() => void toggle()} />
      {editing ? (
        <TaskForm
          mode="edit"
          initial={initial}
          titleLabel={`Title of ${task.title}`}
          onSave={(draft, start) => save(start, draft)}
          onCancel={() => setEditing(false)}
        />
      ) : (
        <div className="task-main">
          <label htmlFor={checkboxId} className="task-title">
            {task.title}
          </label>
          <TaskMeta task={task} zone={zone} now={now} overdue={overdue} onLabel={onLabel} />
        </div>
      )}
      <div className="task-actions">
        {!editing && (
          <button type="button" aria-label={`Edit ${task.title}`} onClick={() => setEditing(true)}>
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

/** Due (overdue said in words, not by colour alone), priority and labels, under the title. */
function TaskMeta({ task, zone, now, overdue, onLabel }: TaskItemProps & { overdue: boolean }) {
  if (task.dueAt === null && task.priority === "NONE" && task.labels.length === 0) return null;
  return (
    <div className="task-meta">
      {task.dueAt !== null && (
        <span className={overdue ? "task-due overdue" : "task-due"} data-testid="task-due">
          {overdue && <strong data-testid="task-overdue">Overdue</strong>}
          {overdue ? ", due " : "Due "}
          <time dateTime={dueDateTime(task, zone)}>{dueText(task, zone, now)}</time>
        </span>
      )}
      {task.priority !== "NONE" && (
        <span className={`task-priority priority-${task.priority.toLowerCase()}`} data-testid="task-priority" data-priority={task.priority}>
          {PRIORITY_NAMES[task.priority]} priority
        </span>
      )}
      {task.labels.length > 0 && (
        <ul className="label-chips" aria-label="Labels">
          {task.labels.map((label) => (
            <li key={label} className="label-chip" data-testid="task-label">
              <button type="button" aria-label={`Show tasks labelled ${label}`} onClick={() => onLabel(label)}>
                {label}
              </button>
            </li>
          ))}
        </ul>
      )}
    </div>
  );
}
