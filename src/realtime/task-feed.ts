import type { DeletedTask, Task } from "../generated/prisma/client.js";
import { ChangeFeed, type ChangeKind, type Gone } from "./change-feed.js";
import type { FeedContext } from "./feed.js";
import type { TaskNotification } from "./protocol.js";

/**
 * taskChanged for one user: a ChangeFeed (./change-feed.ts) over tasks, whose
 * tombstones (deleted_tasks) keep each deleted task's last state, so a
 * DELETED event carries it.
 */

export { CATCH_UP_MARGIN_MS } from "./change-feed.js";

export type TaskChangeKind = ChangeKind;

export interface TaskChangeEvent {
  kind: TaskChangeKind;
  taskId: string;
  /**
   * The task now; for DELETED, its last state. Its lastEventId names the
   * change that made it so (the cause), read in the same row, so the two
   * always agree however many changes the feed collapsed.
   */
  task: Task | null;
}

export class TaskFeed extends ChangeFeed<Task, TaskChangeEvent> {
  constructor(context: FeedContext, healthyAt: () => Date | undefined) {
    const { db, userId } = context;
    super(context, healthyAt, {
      name: "taskChanged",
      read: (ids) => db.task.findMany({ where: { userId, id: { in: ids } } }),
      readGone: async (ids) => (await db.deletedTask.findMany({ where: { userId, id: { in: ids } } })).map(gone),
      changedSince: (from) => db.task.findMany({ where: { userId, updatedAt: { gte: from } }, orderBy: { updatedAt: "asc" } }),
      deletedSince: async (from) =>
        (await db.deletedTask.findMany({ where: { userId, deletedAt: { gte: from } }, orderBy: { deletedAt: "asc" } })).map(gone),
      event: (kind, taskId, task) => ({ kind, taskId, task }),
      // The event that made the version (its cause, which the database sets with every version) is part of it too.
      state: (task) => JSON.stringify([task.updatedAt.toISOString(), task.title, task.description, task.completed, task.lastEventId]),
    });
  }

  hint(note: TaskNotification): void {
    this.hintRow(note.op, note.taskId);
  }
}

function gone(tombstone: DeletedTask): Gone<Task> {
  const { deletedAt, ...task } = tombstone;
  return { id: task.id, deletedAt, last: task };
}
