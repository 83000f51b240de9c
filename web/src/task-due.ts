import { localParts } from "./zoned-date";

/** What a task's due date needs, as the list reads it. */
export interface Due {
  dueAt: string | null;
  dueAllDay: boolean;
  completed: boolean;
}

/**
 * Overdue as the server's filter means it: pending and due before now; an
 * all-day task once its day has ended in the viewer's zone.
 */
export function isOverdue(task: Due, zone: string, now: number): boolean {
  if (task.completed || task.dueAt === null) return false;
  if (!task.dueAllDay) return new Date(task.dueAt).getTime() < now;
  return localParts(task.dueAt, zone).date < localParts(now, zone).date;
}

/** The `datetime` of a due date's <time>: the day for an all-day task, else the instant. */
export function dueDateTime(task: Due, zone: string): string {
  if (task.dueAt === null) return "";
  return task.dueAllDay ? localParts(task.dueAt, zone).date : new Date(task.dueAt).toISOString();
}

/** "Thu, Dec 10" for an all-day task, "Thu, Dec 10, 5:30 PM" otherwise, in the viewer's zone and the browser's language; the year only when it is not this one. */
export function dueText(task: Due, zone: string, now: number): string {
  if (task.dueAt === null) return "";
  const sameYear = localParts(task.dueAt, zone).date.slice(0, 4) === localParts(now, zone).date.slice(0, 4);
  const options: Intl.DateTimeFormatOptions = {
    timeZone: zone,
    weekday: "short",
    month: "short",
    day: "numeric",
    ...(sameYear ? {} : { year: "numeric" }),
    ...(task.dueAllDay ? {} : { hour: "numeric", minute: "2-digit" }),
  };
  return new Intl.DateTimeFormat(undefined, options).format(new Date(task.dueAt));
}
