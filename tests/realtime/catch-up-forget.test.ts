import { afterAll, describe, expect, it } from "vitest";
import type { Db } from "../../src/db/client.js";
import { USER_CAUSE } from "../../src/domain/provenance.js";
import { addTask } from "../../src/domain/tasks.js";
import { createLogger } from "../../src/lib/logger.js";
import type { Outlet } from "../../src/realtime/subscriber.js";
import { TaskFeed, type TaskChangeEvent } from "../../src/realtime/task-feed.js";
import { newUserId, testDb } from "../helpers/db.js";

/**
 * Found by `npm run soak`: after a database restart, a few taskChanged
 * subscribers got a task they already had a second time. A flush that was
 * re-reading when the listener came back forgot the versions it had
 * delivered (the listener's healthy time had jumped past them), and the
 * catch-up that followed, reading from before the outage, sent them again.
 * The feed is driven by hand here, on the real database, with the
 * listener's healthy time and its reconnect placed exactly in that window.
 */
describe("the task feed's catch-up after a reconnect", () => {
  const base = testDb();
  afterAll(async () => {
    await base.$disconnect();
  });

  it("should not send a version again when the reconnect lands while a re-read is under way", async () => {
    const userId = newUserId("catch-up-forget");
    let healthy: Date | undefined;
    let duringTaskRead: (() => void) | undefined;
    // The real client, with a hook after each tasks read: the moment a re-read is under way.
    const db = base.$extends({
      query: {
        task: {
          async findMany({ args, query }) {
            const rows = await query(args);
            const hook = duringTaskRead;
            duringTaskRead = undefined;
            hook?.();
            return rows;
          },
        },
      },
    }) as unknown as Db;
    const events: TaskChangeEvent[] = [];
    const outlet: Outlet<TaskChangeEvent> = {
      push: (event) => events.push(event) > 0,
      drained: async () => {},
      end: () => {},
      onClose: () => {},
      closed: false,
      buffered: 0,
    };
    const feed = new TaskFeed({ userId, db, logger: createLogger("silent"), requestFlush: () => {}, established: () => {} }, () => healthy);
    feed.add(outlet).start();
    await feed.flush();

    // Live delivery of a first task; the listener is healthy up to its commit.
    const first = await addTask(db, userId, { title: "before the outage" }, USER_CAUSE);
    feed.hint({ kind: "task", op: "INSERT", taskId: first.id });
    await feed.flush();
    healthy = first.updatedAt;
    expect(events.map((event) => event.task?.title)).toEqual(["before the outage"]);

    // The listener was down; it comes back, a minute of database time later, while a re-read runs.
    const since = healthy;
    const second = await addTask(db, userId, { title: "re-read while the listener came back" }, USER_CAUSE);
    feed.hint({ kind: "task", op: "INSERT", taskId: second.id });
    duringTaskRead = () => {
      healthy = new Date(since.getTime() + 60_000);
      feed.reconnected({ since });
    };
    await feed.flush();
    expect(duringTaskRead).toBeUndefined();
    // The catch-up runs at the next flush.
    await feed.flush();

    expect(events.map((event) => [event.kind, event.task?.title])).toEqual([
      ["CREATED", "before the outage"],
      ["CREATED", "re-read while the listener came back"],
    ]);
  });
});
