import { useEffect, useState } from "react";
import type { VariablesOf } from "./graphql";
import type { TASKS } from "./documents";

/**
 * What the task list shows: status, search, priority, overdue, a label and
 * the order. Kept in the page's query string (?status=PENDING&q=dentist&…),
 * so it survives a reload and can be bookmarked; only what differs from the
 * default is written, and with replaceState, so typing does not fill the
 * browser's history.
 */

export const STATUSES = ["ALL", "PENDING", "COMPLETED"] as const;
export const PRIORITIES = ["NONE", "LOW", "MEDIUM", "HIGH", "URGENT"] as const;
export const ORDERS = ["DUE_AT", "PRIORITY", "CREATED_AT", "UPDATED_AT"] as const;

export type Status = (typeof STATUSES)[number];
export type Priority = (typeof PRIORITIES)[number];
export type Order = (typeof ORDERS)[number];

export interface TaskView {
  status: Status;
  search: string;
  priority: Priority | "";
  overdue: boolean;
  label: string;
  order: Order;
}

export const DEFAULT_VIEW: TaskView = { status: "ALL", search: "", priority: "", overdue: false, label: "", order: "DUE_AT" };

/** The server's bound on filter.search and on a label's length, so a URL cannot ask for what it would refuse. */
const MAX_SEARCH = 200;
const MAX_LABEL = 40;

const KEYS = { status: "status", search: "q", priority: "priority", overdue: "overdue", label: "label", order: "sort" } as const;

function oneOf<T extends string>(values: readonly T[], value: string | null, fallback: T): T {
  return values.find((candidate) => candidate === value) ?? fallback;
}

export function parseView(query: string): TaskView {
  const params = new URLSearchParams(query);
  return {
    status: oneOf(STATUSES, params.get(KEYS.status), DEFAULT_VIEW.status),
    search: (params.get(KEYS.search) ?? "").slice(0, MAX_SEARCH),
    priority: oneOf<Priority | "">(PRIORITIES, params.get(KEYS.priority), ""),
    overdue: params.get(KEYS.overdue) === "1",
    label: (params.get(KEYS.label) ?? "").slice(0, MAX_LABEL),
    order: oneOf(ORDERS, params.get(KEYS.order), DEFAULT_VIEW.order),
  };
}

/** `query` with the view's keys set (or removed where the view has the default); other keys are kept. */
export function withView(query: string, view: TaskView): string {
  const params = new URLSearchParams(query);
  const values: Record<keyof TaskView, string> = {
    status: view.status === DEFAULT_VIEW.status ? "" : view.status,
    search: view.search,
    priority: view.priority,
    overdue: view.overdue ? "1" : "",
    label: view.label,
    order: view.order === DEFAULT_VIEW.order ? "" : view.order,
  };
  for (const [field, key] of Object.entries(KEYS) as [keyof TaskView, string][]) {
    if (values[field] === "") params.delete(key);
    else params.set(key, values[field]);
  }
  const text = params.toString();
  return text === "" ? "" : `?${text}`;
}

/** The list's view, read from and written back to the URL. */
export function useTaskView(): [TaskView, (change: Partial<TaskView>) => void] {
  const [view, setView] = useState(() => parseView(window.location.search));
  useEffect(() => {
    const search = withView(window.location.search, view);
    if (search !== window.location.search)
      window.history.replaceState(window.history.state, "", `${window.location.pathname}${search}${window.location.hash}`);
  }, [view]);
  return [view, (change) => setView((current) => ({ ...current, ...change }))];
}

/** The tasks query's variables for a view (search and label already debounced by the caller). */
export function taskVariables(view: TaskView): VariablesOf<typeof TASKS> {
  const search = view.search.trim();
  const label = view.label.trim();
  return {
    filter: {
      status: view.status,
      ...(search === "" ? {} : { search }),
      ...(view.priority === "" ? {} : { priority: [view.priority] }),
      ...(view.overdue ? { overdue: true } : {}),
      ...(label === "" ? {} : { labels: [label] }),
    },
    orderBy: { field: view.order },
  };
}
