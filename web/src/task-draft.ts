import type { ADD_TASK, TaskFields, UPDATE_TASK } from "./documents";
import type { ResultOf, VariablesOf } from "./graphql";
import { sameLabels, withLabels } from "./labels";
import type { Priority } from "./task-view";
import { localParts, zonedInstant } from "./zoned-date";

/** A task as its form edits it: the due date as a day and an optional time, in the viewer's zone. */
export interface TaskDraft {
  title: string;
  dueDate: string;
  dueTime: string;
  priority: Priority;
  labels: string[];
}

type Task = ResultOf<typeof TaskFields>;
type AddInput = VariablesOf<typeof ADD_TASK>["input"];
type UpdateInput = VariablesOf<typeof UPDATE_TASK>["input"];

export const EMPTY_DRAFT: TaskDraft = { title: "", dueDate: "", dueTime: "", priority: "NONE", labels: [] };

export function draftOf(task: Task, zone: string): TaskDraft {
  const due = task.dueAt === null ? undefined : localParts(task.dueAt, zone);
  return {
    title: task.title,
    dueDate: due?.date ?? "",
    dueTime: due === undefined || task.dueAllDay ? "" : due.time,
    priority: task.priority,
    labels: [...task.labels],
  };
}

/** The draft with a label still being typed taken as a chip (as if Enter had been pressed). */
export function withPendingLabel(draft: TaskDraft, pending: string): TaskDraft {
  return pending.trim() === "" ? draft : { ...draft, labels: withLabels(draft.labels, pending) };
}

/**
 * dueAt and dueAllDay for a day and optional time: no time means all day,
 * sent as the day's noon in the viewer's zone (the server keeps the day's
 * start; noon is inside the day whatever a DST change does to its midnight).
 */
function dueFields(draft: TaskDraft, zone: string): { dueAt: string | null; dueAllDay: boolean | null } {
  if (draft.dueDate === "") return { dueAt: null, dueAllDay: null };
  const allDay = draft.dueTime === "";
  return { dueAt: zonedInstant(draft.dueDate, allDay ? "12:00" : draft.dueTime, zone).toISOString(), dueAllDay: allDay };
}

/** A time without a day cannot be sent: the form says so next to the due fields. */
export function draftProblem(draft: TaskDraft): string | undefined {
  return draft.dueDate === "" && draft.dueTime !== "" ? "Choose a day for this time." : undefined;
}

export function addInput(draft: TaskDraft, zone: string): AddInput {
  const due = dueFields(draft, zone);
  return {
    title: draft.title,
    ...(due.dueAt === null ? {} : { dueAt: due.dueAt, dueAllDay: due.dueAllDay }),
    priority: draft.priority,
    labels: draft.labels,
  };
}

/** Only what the form changed: an unchanged due date is not sent again (a time entered elsewhere may have seconds). */
export function updateInput(id: string, before: TaskDraft, after: TaskDraft, zone: string): UpdateInput {
  const dueChanged = before.dueDate !== after.dueDate || before.dueTime !== after.dueTime;
  return {
    id,
    ...(after.title === before.title ? {} : { title: after.title }),
    ...(dueChanged ? dueFields(after, zone) : {}),
    ...(after.priority === before.priority ? {} : { priority: after.priority }),
    // null clears them (back to none).
    ...(sameLabels(after.labels, before.labels) ? {} : { labels: after.labels.length === 0 ? null : after.labels }),
  };
}
