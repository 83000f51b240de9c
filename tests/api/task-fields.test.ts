import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseId } from "../../src/lib/ids.js";
import { databaseUrl } from "../helpers/db.js";
import { newUser, startTestServer, type GraphQLResponse, type TestServer, type TestUser } from "../helpers/server.js";

/**
 * Task fields through GraphQL: due date, priority, labels, completedAt and
 * recurrence, each validated with a field-level error and cleared by null;
 * the viewer's time zone; recurring tasks moving on when completed, once
 * even when two completions race.
 */

const FIELDS = "id title completed dueAt dueAllDay priority labels completedAt recurrence";
const ADD = `mutation Add($input: AddTaskInput!) { addTask(input: $input) { ${FIELDS} } }`;
const UPDATE = `mutation Update($input: UpdateTaskInput!) { updateTask(input: $input) { ${FIELDS} } }`;
const COMPLETE = `mutation Complete($id: ID!) { completeTask(id: $id) { ${FIELDS} } }`;
const NEXT = `query Next($id: ID!, $first: Int) { task(id: $id) { id dueAt nextOccurrences(first: $first) } }`;
const VIEWER = `query { viewer { id timezone } }`;
const UPDATE_VIEWER = `mutation Tz($input: UpdateViewerInput!) { updateViewer(input: $input) { id timezone } }`;

interface TaskView {
  id: string;
  title: string;
  completed: boolean;
  dueAt: string | null;
  dueAllDay: boolean;
  priority: string;
  labels: string[];
  completedAt: string | null;
  recurrence: string | null;
}

function expectBadInput(response: GraphQLResponse, field: string, mentions: string | RegExp): void {
  expect(response.data?.addTask ?? response.data?.updateTask ?? response.data?.updateViewer ?? null).toBeNull();
  const [error] = response.errors ?? [];
  expect(error?.extensions?.code).toBe("BAD_USER_INPUT");
  expect(error?.extensions?.field).toBe(field);
  if (typeof mentions === "string") expect(error?.message).toContain(mentions);
  else expect(error?.message).toMatch(mentions);
}

describe("task fields, recurrence and the viewer's time zone", () => {
  let server: TestServer;

  beforeAll(async () => {
    server = await startTestServer();
  });
  afterAll(async () => {
    await server.close();
  });

  async function add(user: TestUser, input: Record<string, unknown>): Promise<TaskView> {
    const response = await user.gql<{ addTask: TaskView }>(ADD, { input: { title: "A task", ...input } });
    expect(response.errors).toBeUndefined();
    return response.data!.addTask;
  }

  async function update(user: TestUser, input: Record<string, unknown>): Promise<TaskView> {
    const response = await user.gql<{ updateTask: TaskView }>(UPDATE, { input });
    expect(response.errors).toBeUndefined();
    return response.data!.updateTask;
  }

  async function setZone(user: TestUser, timezone: string): Promise<void> {
    const response = await user.gql(UPDATE_VIEWER, { input: { timezone } });
    expect(response.errors).toBeUndefined();
  }

  it("should store every field, and clear each with null while leaving omitted ones alone", async () => {
    const user = await newUser(server);
    const task = await add(user, {
      dueAt: "2026-05-04T15:30:00Z",
      priority: "HIGH",
      labels: ["  Home ", "errands"],
      recurrence: "RRULE:freq=weekly;byday=MO",
    });
    expect(task).toMatchObject({
      dueAt: "2026-05-04T15:30:00.000Z",
      dueAllDay: false,
      priority: "HIGH",
      labels: ["Home", "errands"],
      completedAt: null,
      recurrence: "FREQ=WEEKLY;BYDAY=MO",
    });
    const titled = await update(user, { id: task.id, title: "Renamed" });
    expect(titled).toMatchObject({ ...task, title: "Renamed" });
    const cleared = await update(user, { id: task.id, recurrence: null, priority: null, labels: null });
    expect(cleared).toMatchObject({ dueAt: task.dueAt, recurrence: null, priority: "NONE", labels: [] });
    const noDue = await update(user, { id: task.id, dueAt: null });
    expect(noDue).toMatchObject({ dueAt: null, dueAllDay: false });
  });

  it("should keep labels trimmed and unique ignoring case, the first spelling winning, and bound them", async () => {
    const user = await newUser(server);
    const task = await add(user, { labels: ["Work", " work ", "WORK", "Urgent", "urgent"] });
    expect(task.labels).toEqual(["Work", "Urgent"]);
    const many = Array.from({ length: 21 }, (_, index) => `label ${index}`);
    expectBadInput(await user.gql(UPDATE, { input: { id: task.id, labels: many } }), "input.labels", "at most 20 labels");
    // Twenty-one spellings of twenty labels are twenty labels.
    expect((await update(user, { id: task.id, labels: [...many.slice(0, 20), "LABEL 0"] })).labels).toHaveLength(20);
    expectBadInput(await user.gql(UPDATE, { input: { id: task.id, labels: ["ok", "x".repeat(41)] } }), "input.labels[1]", "at most 40 characters");
    expectBadInput(await user.gql(ADD, { input: { title: "t", labels: ["  "] } }), "input.labels[0]", "must not be empty");
    expect((await server.db.task.findUniqueOrThrow({ where: { id: parseId(task.id, "id", "Task") } })).labels).toHaveLength(20);
  });

  it("should refuse an invalid rule, a rule without a due date, and an unknown priority, naming the field", async () => {
    const user = await newUser(server);
    const due = "2026-05-04T09:00:00Z";
    for (const rule of ["FREQ=FORTNIGHTLY", "BYDAY=MO", "FREQ=DAILY;COUNT=0", "FREQ=DAILY;BYHOUR=25", "FREQ=DAILY;COLOUR=RED", "FREQ=MINUTELY"]) {
      expectBadInput(await user.gql(ADD, { input: { title: "t", dueAt: due, recurrence: rule } }), "input.recurrence", /input\.recurrence: /);
    }
    expectBadInput(
      await user.gql(ADD, { input: { title: "t", dueAt: due, recurrence: "DTSTART:20260101T000000Z\nRRULE:FREQ=DAILY" } }),
      "input.recurrence",
      "single RRULE",
    );
    expectBadInput(
      await user.gql(ADD, { input: { title: "t", dueAt: due, recurrence: "FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=30" } }),
      "input.recurrence",
      "no occurrence",
    );
    expectBadInput(await user.gql(ADD, { input: { title: "t", recurrence: "FREQ=DAILY" } }), "input.recurrence", "needs a dueAt");
    expectBadInput(await user.gql(ADD, { input: { title: "t", dueAllDay: true } }), "input.dueAllDay", "needs a dueAt");
    const recurring = await add(user, { dueAt: due, recurrence: "FREQ=DAILY" });
    expectBadInput(await user.gql(UPDATE, { input: { id: recurring.id, dueAt: null } }), "input.dueAt", "clear recurrence too");
    const priority = await user.gql(ADD, { input: { title: "t", priority: "CRITICAL" } });
    expect(priority.errors?.[0]?.extensions?.code).toBe("BAD_USER_INPUT");
    expect(priority.errors?.[0]?.message).toContain("CRITICAL");
    expect(await server.db.task.count({ where: { userId: user.id } })).toBe(1);
  });

  it("should refuse a dueAt or a due bound without an offset, saying which value and what to add, and take one with an offset", async () => {
    const user = await newUser(server);
    await setZone(user, "Europe/Berlin");
    const local = "2026-12-08T17:00:00";
    const needsOffset = 'DateTime needs an offset, e.g. Z or +01:00 ("2026-12-08T17:00:00" has none)';
    const refused = (response: GraphQLResponse, at: RegExp) => {
      expect(response.data ?? null).toBeNull();
      const [error] = response.errors ?? [];
      expect(error?.extensions?.code).toBe("BAD_USER_INPUT");
      expect(error?.message).toContain(needsOffset);
      expect(error?.message).toMatch(at);
    };

    refused(await user.gql(ADD, { input: { title: "Local", dueAt: local } }), /at "input\.dueAt"/);
    const task = await add(user, { title: "Offset" });
    refused(await user.gql(UPDATE, { input: { id: task.id, dueAt: local } }), /at "input\.dueAt"/);
    const search = `query Due($filter: TaskFilter) { tasks(filter: $filter) { edges { node { id } } } }`;
    refused(await user.gql(search, { filter: { dueBefore: local } }), /at "filter\.dueBefore"/);
    // Written in the document: the error points at the value's place in it.
    const document = `mutation { addTask(input: { title: "Literal", dueAt: "${local}" }) { id } }`;
    const literal = await user.gql(document);
    refused(literal, /needs an offset/);
    expect((literal.errors?.[0] as { locations?: unknown[] } | undefined)?.locations?.[0]).toEqual({
      line: 1,
      column: document.indexOf(`"${local}"`) + 1,
    });
    expect(await server.db.task.count({ where: { userId: user.id, title: { in: ["Local", "Literal"] } } })).toBe(0);
    expect((await server.db.task.findUniqueOrThrow({ where: { id: parseId(task.id, "id", "Task") } })).dueAt).toBeNull();

    expect((await update(user, { id: task.id, dueAt: `${local}+01:00` })).dueAt).toBe("2026-12-08T16:00:00.000Z");
    expect((await update(user, { id: task.id, dueAt: `${local}Z` })).dueAt).toBe("2026-12-08T17:00:00.000Z");
  });

  it("should name the field of a DateTime without an offset in extensions.field, in variables and in the document", async () => {
    const user = await newUser(server);
    const local = "2026-12-24T10:00:00";
    const task = await add(user, { title: "Field path" });
    const search = `query Due($filter: TaskFilter) { tasks(filter: $filter) { edges { node { id } } } }`;
    const viaVariables: [GraphQLResponse, string][] = [
      [await user.gql(ADD, { input: { title: "Local variable", dueAt: local } }), "input.dueAt"],
      [await user.gql(UPDATE, { input: { id: task.id, dueAt: local } }), "input.dueAt"],
      [await user.gql(search, { filter: { dueAfter: local } }), "filter.dueAfter"],
      // A variable of its own: the bad value is the variable itself, whatever argument it fills.
      [await user.gql(`mutation Add($due: DateTime) { addTask(input: { title: "Own variable", dueAt: $due }) { id } }`, { due: local }), "due"],
      // Variables are named by the client: the path is where the value sits in them.
      [
        await user.gql(`mutation Add($task: AddTaskInput!) { addTask(input: $task) { id } }`, { task: { title: "Renamed", dueAt: local } }),
        "task.dueAt",
      ],
    ];
    const inDocument: [GraphQLResponse, string][] = [
      [await user.gql(`mutation { addTask(input: { title: "Local literal", dueAt: "${local}" }) { id } }`), "input.dueAt"],
      [await user.gql(`mutation { updateTask(input: { id: "${task.id}", dueAt: "${local}" }) { id } }`), "input.dueAt"],
      [await user.gql(`{ tasks(filter: { dueBefore: "${local}" }) { edges { node { id } } } }`), "filter.dueBefore"],
    ];
    for (const [response, field] of [...viaVariables, ...inDocument]) {
      expect(response.data ?? null).toBeNull();
      expect(response.errors).toHaveLength(1);
      expect(response.errors?.[0]?.message).toContain(`("${local}" has none)`);
      expect(response.errors?.[0]?.extensions).toMatchObject({ code: "BAD_USER_INPUT", field });
    }
    expect(await server.db.task.count({ where: { userId: user.id } })).toBe(1);
    expect((await server.db.task.findUniqueOrThrow({ where: { id: parseId(task.id, "id", "Task") } })).dueAt).toBeNull();
  });

  it("should name the field of any value that does not coerce, such as an unknown priority, in variables and in the document", async () => {
    const user = await newUser(server);
    const variable = await user.gql(ADD, { input: { title: "Unknown priority", priority: "CRITICAL", labels: ["ok", 7] } });
    const literal = await user.gql(`mutation { addTask(input: { title: "Unknown priority", labels: ["ok", 7] }) { id } }`);
    expect(variable.errors?.map((error) => String(error.extensions?.field)).sort()).toEqual(["input.labels[1]", "input.priority"]);
    expect(literal.errors?.map((error) => error.extensions?.field)).toEqual(["input.labels[1]"]);
    // The message quotes the value before the path: a value that looks like a path is not taken for one.
    const lookalike = await user.gql(`mutation Add($due: DateTime) { addTask(input: { title: "Lookalike", dueAt: $due }) { id } }`, {
      due: 'soon at "due.dueAt"',
    });
    expect(lookalike.errors?.map((error) => error.extensions?.field)).toEqual(["due"]);
    for (const error of [...(variable.errors ?? []), ...(literal.errors ?? []), ...(lookalike.errors ?? [])]) {
      expect(error.extensions?.code).toBe("BAD_USER_INPUT");
    }
    expect(await server.db.task.count({ where: { userId: user.id } })).toBe(0);
  });

  it("should answer the viewer's time zone, UTC by default, and refuse an unknown zone on timezone", async () => {
    const user = await newUser(server);
    expect((await user.gql(VIEWER)).data).toEqual({ viewer: { id: user.id, timezone: "UTC" } });
    expect((await user.gql(UPDATE_VIEWER, { input: { timezone: "Europe/Berlin" } })).data).toEqual({
      updateViewer: { id: user.id, timezone: "Europe/Berlin" },
    });
    for (const zone of ["Mars/Olympus_Mons", "europe/berlin", "", "+02:00"]) {
      expectBadInput(await user.gql(UPDATE_VIEWER, { input: { timezone: zone } }), "input.timezone", "time zone");
    }
    expect((await user.gql(VIEWER)).data).toEqual({ viewer: { id: user.id, timezone: "Europe/Berlin" } });
    // IANA's current names, which Intl's canonical list spells the old way (Asia/Calcutta, Europe/Kiev).
    for (const zone of ["Asia/Kolkata", "Europe/Kyiv", "Etc/GMT+5"]) {
      expect((await user.gql(UPDATE_VIEWER, { input: { timezone: zone } })).data?.updateViewer.timezone).toBe(zone);
    }
    expect((await user.gql(UPDATE_VIEWER, { input: { timezone: null } })).data?.updateViewer.timezone).toBe("UTC");
  });

  it("should keep an all-day task at the start of its day in the viewer's zone", async () => {
    const user = await newUser(server);
    await setZone(user, "America/New_York");
    // 02:00 UTC on the 5th is still the 4th in New York (EDT, UTC-4): due that day, from its local midnight.
    const task = await add(user, { dueAt: "2026-05-05T02:00:00Z", dueAllDay: true });
    expect(task).toMatchObject({ dueAt: "2026-05-04T04:00:00.000Z", dueAllDay: true });
  });

  it("should keep all-day tasks on their calendar day when the viewer's zone changes, and timed tasks at their instant", async () => {
    const user = await newUser(server);
    await setZone(user, "Europe/Berlin");
    const allDay = await add(user, { title: "Dentist day", dueAt: "2026-05-04T10:00:00+02:00", dueAllDay: true });
    const timed = await add(user, { title: "Call at five", dueAt: "2026-05-04T17:00:00+02:00" });
    const winter = await add(user, { title: "Done all-day", dueAt: "2026-01-10T12:00:00+01:00", dueAllDay: true });
    const done = await update(user, { id: winter.id, completed: true });
    expect(allDay.dueAt).toBe("2026-05-03T22:00:00.000Z");
    await setZone(user, "America/New_York");
    const read = async (id: string) => (await user.gql<{ task: TaskView }>(`query($id: ID!) { task(id: $id) { ${FIELDS} } }`, { id })).data!.task;
    // Still the 4th of May, now from New York's midnight (EDT, UTC-4); winter's 10th of January from EST's (UTC-5).
    expect(await read(allDay.id)).toMatchObject({ dueAt: "2026-05-04T04:00:00.000Z", dueAllDay: true });
    expect(await read(done.id)).toMatchObject({ dueAt: "2026-01-10T05:00:00.000Z", completed: true });
    expect((await read(timed.id)).dueAt).toBe("2026-05-04T15:00:00.000Z");
    // Setting the same zone again moves nothing; the move is recorded as the user's change.
    await setZone(user, "America/New_York");
    expect((await read(allDay.id)).dueAt).toBe("2026-05-04T04:00:00.000Z");
    const sql = new pg.Client({ connectionString: databaseUrl() });
    await sql.connect();
    try {
      const { rows } = await sql.query<{ actor: string }>(
        "SELECT actor::text AS actor FROM task_events WHERE task_id = $1 AND kind = 'UPDATED' ORDER BY seq",
        [parseId(allDay.id, "id", "Task")],
      );
      expect(rows.map((row) => row.actor)).toEqual(["USER"]);
    } finally {
      await sql.end();
    }
  });

  it("should keep a weekly rule on the same local hour across both DST changes in Europe/Berlin", async () => {
    const user = await newUser(server);
    await setZone(user, "Europe/Berlin");
    // Thursday 2026-03-19 09:00 CET (UTC+1); Berlin moves to CEST on 29 March and back on 25 October.
    const spring = await add(user, { dueAt: "2026-03-19T08:00:00Z", recurrence: "FREQ=WEEKLY" });
    const next = await user.gql<{ task: { nextOccurrences: string[] } }>(NEXT, { id: spring.id, first: 3 });
    expect(next.data?.task.nextOccurrences).toEqual(["2026-03-26T08:00:00.000Z", "2026-04-02T07:00:00.000Z", "2026-04-09T07:00:00.000Z"]);
    const autumn = await add(user, { dueAt: "2026-10-22T07:00:00Z", recurrence: "FREQ=WEEKLY;BYDAY=TH" });
    const after = await user.gql<{ task: { nextOccurrences: string[] } }>(NEXT, { id: autumn.id, first: 2 });
    expect(after.data?.task.nextOccurrences).toEqual(["2026-10-29T08:00:00.000Z", "2026-11-05T08:00:00.000Z"]);
    const bounds = await user.gql(NEXT, { id: spring.id, first: 51 });
    expect(bounds.errors?.[0]?.extensions).toMatchObject({ code: "BAD_USER_INPUT", field: "first" });
  });

  it("should move a recurring task to its next occurrence when completed, record completedAt, and end it with its COUNT", async () => {
    const user = await newUser(server);
    await setZone(user, "Europe/Berlin");
    const task = await add(user, { dueAt: "2026-03-26T08:00:00Z", recurrence: "FREQ=WEEKLY;COUNT=3" });
    const first = (await user.gql<{ completeTask: TaskView }>(COMPLETE, { id: task.id })).data!.completeTask;
    expect(first).toMatchObject({ completed: false, dueAt: "2026-04-02T07:00:00.000Z", recurrence: "FREQ=WEEKLY;COUNT=2" });
    expect(first.completedAt).not.toBeNull();
    const second = await update(user, { id: task.id, completed: true });
    expect(second).toMatchObject({ completed: false, dueAt: "2026-04-09T07:00:00.000Z", recurrence: "FREQ=WEEKLY;COUNT=1" });
    const last = (await user.gql<{ completeTask: TaskView }>(COMPLETE, { id: task.id })).data!.completeTask;
    expect(last).toMatchObject({ completed: true, dueAt: "2026-04-09T07:00:00.000Z" });
    expect(last.completedAt).not.toBeNull();
    const reopened = await update(user, { id: task.id, completed: false });
    expect(reopened).toMatchObject({ completed: false, completedAt: null });

    // Each completion is in the task's history: completedAt set, the due date moved on.
    const events = await server.db.taskEvent.findMany({
      where: { userId: user.id, taskId: parseId(task.id, "id", "Task") },
      orderBy: { seq: "asc" },
    });
    const advances = events.filter((event) => (event.after as { completed_at?: string | null } | null)?.completed_at != null);
    expect(advances.map((event) => (event.after as { due_at: string }).due_at)).toEqual([
      "2026-04-02T07:00:00+00:00",
      "2026-04-09T07:00:00+00:00",
      "2026-04-09T07:00:00+00:00",
    ]);
  });

  it("should advance a recurring task once when two completions race", async () => {
    const user = await newUser(server);
    const task = await add(user, { dueAt: "2026-06-01T09:00:00Z", recurrence: "FREQ=DAILY" });
    const id = parseId(task.id, "id", "Task");
    // Hold the row, so both requests read it as it is and then wait for it: a real race, every time.
    const holder = new pg.Client({ connectionString: databaseUrl() });
    await holder.connect();
    try {
      await holder.query("BEGIN");
      await holder.query("SELECT id FROM tasks WHERE id = $1 FOR UPDATE", [id]);
      const racing = Promise.all([
        user.gql<{ completeTask: TaskView }>(COMPLETE, { id: task.id }),
        user.gql<{ updateTask: TaskView }>(UPDATE, { input: { id: task.id, completed: true } }),
      ]);
      await waitForLockWaiters(holder, id, 2);
      await holder.query("COMMIT");
      const [a, b] = await racing;
      expect(a.errors).toBeUndefined();
      expect(b.errors).toBeUndefined();
      expect(a.data?.completeTask.dueAt).toBe("2026-06-02T09:00:00.000Z");
      expect(b.data?.updateTask.dueAt).toBe("2026-06-02T09:00:00.000Z");
    } finally {
      await holder.end();
    }
    const row = await server.db.task.findUniqueOrThrow({ where: { id } });
    expect(row.dueAt?.toISOString()).toBe("2026-06-02T09:00:00.000Z");
    expect(await server.db.taskEvent.count({ where: { taskId: id, kind: "UPDATED" } })).toBe(1);
  });
});

/** Waits until `count` sessions wait, directly or in a queue, for a lock `holder` holds (the task's row: it holds nothing else). */
async function waitForLockWaiters(holder: pg.Client, taskId: string, count: number): Promise<void> {
  for (let tries = 0; tries < 400; tries += 1) {
    const { rows } = await holder.query<{ waiting: number }>(
      // The second writer queues behind the first (the row's tuple lock), so follow the chain.
      `WITH RECURSIVE waiters(pid) AS (
         SELECT pid FROM pg_stat_activity WHERE pg_backend_pid() = ANY(pg_blocking_pids(pid))
         UNION SELECT a.pid FROM pg_stat_activity a JOIN waiters w ON w.pid = ANY(pg_blocking_pids(a.pid)))
       SELECT count(*)::int AS waiting FROM waiters`,
    );
    if ((rows[0]?.waiting ?? 0) >= count) return;
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
  throw new Error(`fewer than ${count} writes of task ${taskId} waited for its lock`);
}
