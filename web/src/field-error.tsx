import type { FieldProblem, FormField } from "./field-errors";

/** The server's refusal of one field, beside it; `detail` names the item at fault (a label). */
export function FieldError(props: { id: string; field: FormField | undefined; problem: FieldProblem | undefined; detail?: string | undefined }) {
  const { problem } = props;
  if (!problem || problem.field !== props.field) return null;
  return (
    <p id={props.id} role="alert" className="error field-error" data-testid="field-error" data-field={props.field ?? "form"}>
      {props.detail === undefined ? problem.message : `“${props.detail}” ${problem.message}`}
    </p>
  );
}
