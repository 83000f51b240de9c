import { useId, useState, type FormEvent, type KeyboardEvent } from "react";
import { FieldError } from "./field-error";
import type { FieldProblem } from "./field-errors";
import { LabelField } from "./label-field";
import { draftProblem, withPendingLabel, type TaskDraft } from "./task-draft";
import { PRIORITIES, type Priority } from "./task-view";

export const PRIORITY_NAMES: Record<Priority, string> = { NONE: "None", LOW: "Low", MEDIUM: "Medium", HIGH: "High", URGENT: "Urgent" };

interface TaskFormProps {
  mode: "add" | "edit";
  initial: TaskDraft;
  /** The title field's accessible name. */
  titleLabel: string;
  /**
   * Saves the draft; `start` is the draft the form opened with, so an edit sends
   * only what the user changed (not a field another tab changed meanwhile). A
   * problem keeps the form open with it shown beside its field.
   */
  onSave: (draft: TaskDraft, start: TaskDraft) => Promise<FieldProblem | undefined>;
  onCancel?: () => void;
  /** Saving is not possible yet (e.g. the viewer's time zone is still loading). */
  disabled?: boolean;
}

/** A task's title, due day and optional time, priority and labels: adding a task, and editing one. */
export function TaskForm({ mode, initial, titleLabel, onSave, onCancel, disabled }: TaskFormProps) {
  const [start] = useState(initial);
  const [draft, setDraft] = useState(initial);
  const [pending, setPending] = useState("");
  const [problem, setProblem] = useState<FieldProblem>();
  const [saving, setSaving] = useState(false);
  const formId = useId();
  const set = (change: Partial<TaskDraft>) => setDraft((current) => ({ ...current, ...change }));

  const submit = async (event: FormEvent) => {
    event.preventDefault();
    if (draft.title.trim() === "") return mode === "edit" ? onCancel?.() : undefined;
    const full = withPendingLabel(draft, pending);
    const local = draftProblem(full);
    if (local) return setProblem({ field: "due", message: local });
    setDraft(full);
    setPending("");
    setSaving(true);
    const refused = await onSave(full, start);
    setSaving(false);
    setProblem(refused);
    if (!refused && mode === "add") setDraft(initial);
  };
  const onKey = (event: KeyboardEvent) => {
    if (event.key === "Escape" && onCancel) onCancel();
  };
  return (
    <form className={`task-form task-form-${mode}`} data-testid="task-form" onSubmit={submit} onKeyDown={onKey}>
      <TitleRow
        mode={mode}
        label={titleLabel}
        value={draft.title}
        onChange={(title) => set({ title })}
        problem={problem}
        busy={saving || disabled === true}
      />
      <div className="task-form-details">
        <DueFields draft={draft} set={set} problem={problem} />
        <PriorityField value={draft.priority} onChange={(priority) => set({ priority })} problem={problem} />
      </div>
      <LabelField labels={draft.labels} pending={pending} onPending={setPending} onChange={(labels) => set({ labels })} problem={problem} />
      <FieldError id={`${formId}-error`} field={undefined} problem={problem} />
      {mode === "edit" && (
        <div className="task-form-actions">
          <button type="submit" data-testid="task-save" disabled={saving}>
            Save
          </button>
          <button type="button" onClick={onCancel}>
            Cancel
          </button>
        </div>
      )}
    </form>
  );
}

interface TitleRowProps {
  mode: "add" | "edit";
  label: string;
  value: string;
  onChange: (title: string) => void;
  problem: FieldProblem | undefined;
  busy: boolean;
}

function TitleRow({ mode, label, value, onChange, problem, busy }: TitleRowProps) {
  const id = useId();
  const invalid = problem?.field === "title";
  return (
    <div className="field">
      <label htmlFor={id} className={mode === "edit" ? "visually-hidden" : undefined}>
        {label}
      </label>
      <div className="row">
        <input
          id={id}
          data-testid={mode === "add" ? "new-task-title" : "task-title-input"}
          value={value}
          maxLength={200}
          autoFocus={mode === "edit"}
          placeholder={mode === "add" ? "Buy milk" : undefined}
          aria-invalid={invalid || undefined}
          aria-describedby={invalid ? `${id}-error` : undefined}
          onChange={(event) => onChange(event.target.value)}
        />
        {mode === "add" && (
          <button type="submit" data-testid="add-task" disabled={busy}>
            Add
          </button>
        )}
      </div>
      <FieldError id={`${id}-error`} field="title" problem={problem} />
    </div>
  );
}

function DueFields({ draft, set, problem }: { draft: TaskDraft; set: (change: Partial<TaskDraft>) => void; problem: FieldProblem | undefined }) {
  const id = useId();
  const invalid = problem?.field === "due";
  const described = invalid ? `${id}-error` : undefined;
  return (
    <fieldset className="field due-field">
      <legend>Due</legend>
      <div className="row">
        <label className="visually-hidden" htmlFor={`${id}-date`}>
          Due date
        </label>
        <input
          id={`${id}-date`}
          type="date"
          data-testid="due-date"
          value={draft.dueDate}
          aria-invalid={invalid || undefined}
          aria-describedby={described}
          onChange={(event) => set({ dueDate: event.target.value })}
        />
        <label className="visually-hidden" htmlFor={`${id}-time`}>
          Due time (optional; none means all day)
        </label>
        <input
          id={`${id}-time`}
          type="time"
          data-testid="due-time"
          value={draft.dueTime}
          aria-describedby={described}
          onChange={(event) => set({ dueTime: event.target.value })}
        />
      </div>
      <FieldError id={`${id}-error`} field="due" problem={problem} />
    </fieldset>
  );
}

function PriorityField({ value, onChange, problem }: { value: Priority; onChange: (priority: Priority) => void; problem: FieldProblem | undefined }) {
  const id = useId();
  return (
    <div className="field">
      <label htmlFor={id}>Priority</label>
      <select id={id} data-testid="priority" value={value} onChange={(event) => onChange(event.target.value as Priority)}>
        {PRIORITIES.map((priority) => (
          <option key={priority} value={priority}>
            {PRIORITY_NAMES[priority]}
          </option>
        ))}
      </select>
      <FieldError id={`${id}-error`} field="priority" problem={problem} />
    </div>
  );
}
