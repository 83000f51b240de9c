import { useId, type KeyboardEvent } from "react";
import type { FieldProblem } from "./field-errors";
import { FieldError } from "./field-error";
import { withLabels, withoutLabel } from "./labels";

interface LabelFieldProps {
  labels: string[];
  pending: string;
  onPending: (text: string) => void;
  onChange: (labels: string[]) => void;
  problem: FieldProblem | undefined;
}

/** Labels as chips: typing then Enter or a comma adds one, × removes it; the server's error about a label shows below. */
export function LabelField({ labels, pending, onPending, onChange, problem }: LabelFieldProps) {
  const id = useId();
  const errorId = `${id}-error`;
  const invalid = problem?.field === "labels";
  const commit = (text: string) => {
    onChange(withLabels(labels, text));
    onPending("");
  };
  const onKey = (event: KeyboardEvent<HTMLInputElement>) => {
    // Enter with nothing typed submits the form, as in any other field.
    if (event.key === "Enter" && pending.trim() !== "") {
      event.preventDefault();
      commit(pending);
    }
    if (event.key === "Backspace" && pending === "" && labels.length > 0) onChange(withoutLabel(labels, labels.length - 1));
  };
  const onType = (text: string) => (text.includes(",") ? commit(text) : onPending(text));
  return (
    <div className="field labels-field">
      <label htmlFor={id}>Labels</label>
      {labels.length > 0 && (
        <ul className="label-chips" aria-label="Labels">
          {labels.map((label, index) => (
            <li key={label} className="label-chip" data-testid="label-chip" data-invalid={invalid && problem?.index === index ? "true" : undefined}>
              {label}
              <button type="button" aria-label={`Remove label ${label}`} onClick={() => onChange(withoutLabel(labels, index))}>
                ×
              </button>
            </li>
          ))}
        </ul>
      )}
      <input
        id={id}
        data-testid="label-input"
        value={pending}
        placeholder="Type, then Enter"
        aria-invalid={invalid || undefined}
        aria-describedby={invalid ? errorId : undefined}
        onChange={(event) => onType(event.target.value)}
        onKeyDown={onKey}
      />
      <FieldError id={errorId} field="labels" problem={problem} detail={problem?.index === undefined ? undefined : labels[problem.index]} />
    </div>
  );
}
