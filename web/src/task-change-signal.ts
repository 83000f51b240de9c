import { useSyncExternalStore } from "react";

/**
 * A count of the taskChanged events this page has received, for views whose
 * server-computed state a task change can alter (a turn's Undo: a conflict;
 * a task's history): they read again when it moves. The cache's taskChanged
 * updater moves it; there is one client per page, so one count.
 */
let count = 0;
const listeners = new Set<() => void>();

export function signalTaskChange(): void {
  count += 1;
  for (const listener of listeners) listener();
}

function subscribe(listener: () => void): () => void {
  listeners.add(listener);
  return () => listeners.delete(listener);
}

export function useTaskChangeCount(): number {
  return useSyncExternalStore(subscribe, () => count);
}
