import type { CombinedError } from "urql";
import { describeError } from "./errors";

export type FormField = "title" | "due" | "priority" | "labels";

/** A refused save, placed next to the form field it is about (`field` undefined: the form as a whole). */
export interface FieldProblem {
  field: FormField | undefined;
  message: string;
  /** For one label of labels: which one (its index in what was sent). */
  index?: number;
}

const FIELDS: Record<string, FormField> = {
  title: "title",
  dueAt: "due",
  dueAllDay: "due",
  recurrence: "due",
  priority: "priority",
  labels: "labels",
};

/**
 * The server names the input field at fault in `extensions.field` (e.g.
 * "input.labels[2]") and starts its message with it; the form shows the rest
 * beside that field.
 */
export function fieldProblem(error: CombinedError): FieldProblem {
  const first = error.graphQLErrors[0];
  const field = first?.extensions.field;
  if (!first || typeof field !== "string") return { field: undefined, message: describeError(error) };
  const match = /^(?:input\.)?(\w+)(?:\[(\d+)\])?$/.exec(field);
  const form = match?.[1] === undefined ? undefined : FIELDS[match[1]];
  const message = first.message.startsWith(`${field}: `) ? first.message.slice(field.length + 2) : first.message;
  if (form === undefined) return { field: undefined, message: first.message };
  return { field: form, message, ...(match?.[2] === undefined ? {} : { index: Number(match[2]) }) };
}
