import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseId } from "../../src/lib/ids.js";
import { newUser } from "../helpers/server.js";
import {
  ADD_TASK,
  COMPLETE_TASK,
  live,
  nextTaskChange,
  startLiveServer,
  TASK_CHANGED,
  UPDATE_TASK,
  type LiveServer,
  type TaskView,
} from "./support.js";

describe("updates that change nothing", () => {
  let server: LiveServer;

  beforeAll(async () => {
    server = await startLiveServer();
  });
  afterAll(async () => {
    await server?.close();
  });

  it("should neither push taskChanged nor move updatedAt when a completed task is completed again", async () => {
    const user = await newUser(server, "no-op");
    const task = (await user.gql<{ addTask: TaskView }>(ADD_TASK, { title: "Water plants" })).data!.addTask;
    const sub = await live(server, server.connect(user.token), TASK_CHANGED);

    const once = (await user.gql<{ completeTask: TaskView }>(COMPLETE_TASK, { id: task.id })).data!.completeTask;
    expect(await nextTaskChange(sub)).toEqual({ kind: "UPDATED", taskId: task.id, task: once });

    const twice = await user.gql<{ completeTask: TaskView }>(COMPLETE_TASK, { id: task.id });
    expect(twice.errors).toBeUndefined();
    expect(twice.data!.completeTask).toEqual(once);
    // The same values through updateTask, and a no-op UPDATE in SQL, are silent too.
    const same = await user.gql<{ updateTask: TaskView }>(UPDATE_TASK, {
      input: { id: task.id, title: once.title, description: once.description, completed: true },
    });
    expect(same.data!.updateTask).toEqual(once);
    const rawId = parseId(task.id, "id", "Task");
    expect(await server.db.$executeRaw`UPDATE tasks SET title = title, completed = completed WHERE id = ${rawId}::uuid`).toBe(1);
    const stored = await server.db.task.findUniqueOrThrow({ where: { id: rawId } });
    expect(stored.updatedAt.toISOString()).toBe(once.updatedAt);

    // The next real change is the next event: nothing was pushed for the no-ops before it.
    const renamed = (await user.gql<{ updateTask: TaskView }>(UPDATE_TASK, { input: { id: task.id, title: "Water the plants" } })).data!.updateTask;
    expect(Date.parse(renamed.updatedAt)).toBeGreaterThanOrEqual(Date.parse(once.updatedAt));
    expect(await nextTaskChange(sub)).toEqual({ kind: "UPDATED", taskId: task.id, task: renamed });
    expect(sub.pending()).toEqual([]);
    sub.dispose();
  });
});
