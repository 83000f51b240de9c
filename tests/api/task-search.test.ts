import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseId } from "../../src/lib/ids.js";
import { databaseUrl } from "../helpers/db.js";
import { newUser, startTestServer, type TestServer, type TestUser } from "../helpers/server.js";

/**
 * tasks(filter:, orderBy:): full-text search (stems, prefixes, typos), the
 * due/overdue/priority/labels filters combined, and keyset pagination under
 * each order with ties. Due dates, priorities and labels are set with SQL:
 * addTask takes them on another branch (issue 25, item 1).
 */

const LIST = `query($filter: TaskFilter, $orderBy: TaskOrder, $first: Int, $after: String, $last: Int, $before: String, $status: TaskStatusFilter) {
  tasks(filter: $filter, orderBy: $orderBy, first: $first, after: $after, last: $last, before: $before, status: $status) {
    edges { cursor node { id title } }
    pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
  }
}`;

interface Page {
  edges: { cursor: string; node: { id: string; title: string } }[];
  pageInfo: { hasNextPage: boolean; hasPreviousPage: boolean; startCursor: string | null; endCursor: string | null };
}

describe("task search, filters and orders", () => {
  let server: TestServer;
  let sql: pg.Client;

  beforeAll(async () => {
    server = await startTestServer();
    sql = new pg.Client({ connectionString: databaseUrl() });
    await sql.connect();
  });
  afterAll(async () => {
    await sql.end();
    await server.close();
  });

  interface Seed {
    title: string;
    description?: string;
    dueAt?: string | null;
    allDay?: boolean;
    priority?: string;
    labels?: string[];
    completed?: boolean;
  }

  /** Adds each task through the API, then sets the fields addTask does not take yet. */
  async function seed(user: TestUser, tasks: Seed[]): Promise<Map<string, string>> {
    const ids = new Map<string, string>();
    for (const task of tasks) {
      const response = await user.gql<{ addTask: { id: string } }>(
        `mutation($title: String!, $description: String) { addTask(input: { title: $title, description: $description }) { id } }`,
        { title: task.title, description: task.description ?? null },
      );
      const id = response.data!.addTask.id;
      ids.set(task.title, id);
      await sql.query(`UPDATE tasks SET due_at = $2, due_all_day = $3, priority = $4::task_priority, labels = $5, completed = $6 WHERE id = $1`, [
        parseId(id, "id", "Task"),
        task.dueAt ?? null,
        task.allDay ?? false,
        task.priority ?? "NONE",
        task.labels ?? [],
        task.completed ?? false,
      ]);
    }
    return ids;
  }

  async function list(user: TestUser, variables: Record<string, unknown>): Promise<Page> {
    const response = await user.gql<{ tasks: Page }>(LIST, variables);
    expect(response.errors).toBeUndefined();
    return response.data!.tasks;
  }

  const titles = (page: Page) => page.edges.map((edge) => edge.node.title);
  const search = async (user: TestUser, text: string) => titles(await list(user, { filter: { search: text }, first: 50 })).sort();

  it("should match stems, the prefix of the last word, phrases, exclusions and small typos in titles", async () => {
    const user = await newUser(server);
    await seed(user, [
      { title: "Call the dentist", description: "about the crown" },
      { title: "Running shoes", description: "buy new ones" },
      { title: "Groceries", description: "milk, eggs and dentists' floss" },
      { title: "Tax return" },
    ]);
    expect(await search(user, "dentists")).toEqual(["Call the dentist", "Groceries"]);
    expect(await search(user, "run")).toEqual(["Running shoes"]);
    expect(await search(user, "dent")).toEqual(["Call the dentist", "Groceries"]);
    expect(await search(user, "call den")).toEqual(["Call the dentist"]);
    expect(await search(user, "crown")).toEqual(["Call the dentist"]);
    expect(await search(user, "dentist -floss")).toEqual(["Call the dentist"]);
    expect(await search(user, '"new ones"')).toEqual(["Running shoes"]);
    // A typo matches titles by trigram similarity only (the description of Groceries has "dentists" too).
    expect(await search(user, "dentistt")).toEqual(["Call the dentist"]);
    expect(await search(user, "zebra")).toEqual([]);
    // Tsquery syntax in the text is only text: no error, no match of everything.
    expect(await search(user, "a & | ! :* ' \\ (")).toEqual([]);
    // Blank is no search.
    expect(await search(user, "   ")).toHaveLength(4);
  });

  it("should never match another user's tasks", async () => {
    const alice = await newUser(server);
    const bob = await newUser(server);
    await seed(alice, [{ title: "Secret dentist visit" }]);
    expect(await search(bob, "dentist")).toEqual([]);
  });

  it("should combine due, overdue, priority, labels and status filters", async () => {
    const user = await newUser(server);
    const past = new Date(Date.now() - 3 * 86_400_000).toISOString();
    const soon = new Date(Date.now() + 86_400_000).toISOString();
    const later = new Date(Date.now() + 10 * 86_400_000).toISOString();
    await seed(user, [
      { title: "late urgent", dueAt: past, priority: "URGENT", labels: ["Work", "Home"] },
      { title: "late low", dueAt: past, priority: "LOW", labels: ["work"] },
      { title: "late but done", dueAt: past, priority: "URGENT", labels: ["work"], completed: true },
      { title: "soon high", dueAt: soon, priority: "HIGH", labels: ["WORK"] },
      { title: "later", dueAt: later, priority: "HIGH" },
      { title: "undated", priority: "URGENT", labels: ["home"] },
    ]);
    const find = async (filter: Record<string, unknown>) => titles(await list(user, { filter, first: 50 })).sort();
    expect(await find({ overdue: true })).toEqual(["late low", "late urgent"]);
    expect(await find({ overdue: false })).toEqual(["late but done", "later", "soon high", "undated"]);
    expect(await find({ overdue: true, priority: ["URGENT", "HIGH"] })).toEqual(["late urgent"]);
    expect(await find({ labels: ["work"] })).toEqual(["late but done", "late low", "late urgent", "soon high"]);
    expect(await find({ labels: ["WORK", "home"] })).toEqual(["late urgent"]);
    expect(await find({ dueAfter: new Date().toISOString(), dueBefore: later })).toEqual(["soon high"]);
    expect(await find({ dueBefore: soon, status: "COMPLETED" })).toEqual(["late but done"]);
    expect(await find({ priority: ["URGENT"], labels: ["home"], status: "PENDING" })).toEqual(["late urgent", "undated"]);
    // The old status argument still filters, alone or with a filter that agrees.
    const pending = await list(user, { status: "PENDING", filter: { labels: ["work"] }, first: 50 });
    expect(titles(pending).sort()).toEqual(["late low", "late urgent", "soon high"]);
  });

  it("should count an all-day task overdue only once its day has ended in the user's zone", async () => {
    const user = await newUser(server);
    const startOfTodayUtc = new Date(new Date().toISOString().slice(0, 10) + "T00:00:00Z");
    const yesterday = new Date(startOfTodayUtc.getTime() - 86_400_000).toISOString();
    await seed(user, [
      { title: "today, all day", dueAt: startOfTodayUtc.toISOString(), allDay: true },
      { title: "yesterday, all day", dueAt: yesterday, allDay: true },
    ]);
    expect(titles(await list(user, { filter: { overdue: true }, first: 10 }))).toEqual(["yesterday, all day"]);
  });

  it("should page under every order with ties, without duplicates or gaps, forward and backward", async () => {
    const user = await newUser(server);
    const due = new Date(Date.now() + 86_400_000).toISOString();
    const seeds: Seed[] = [];
    for (let i = 0; i < 13; i += 1) {
      // Three priorities and two due dates (and none) tie many tasks on the order key.
      seeds.push({ title: `t${i}`, priority: ["LOW", "HIGH", "HIGH"][i % 3]!, dueAt: i % 4 === 0 ? null : i % 2 === 0 ? due : null });
    }
    await seed(user, seeds);
    for (const field of ["CREATED_AT", "UPDATED_AT", "DUE_AT", "PRIORITY"]) {
      for (const direction of ["ASC", "DESC"]) {
        const orderBy = { field, direction };
        const all = titles(await list(user, { orderBy, first: 100 }));
        expect(all).toHaveLength(13);
        const forward: string[] = [];
        let after: string | null = null;
        for (let guard = 0; guard < 10; guard += 1) {
          const page: Page = await list(user, { orderBy, first: 4, after });
          forward.push(...titles(page));
          if (!page.pageInfo.hasNextPage) break;
          after = page.pageInfo.endCursor;
        }
        expect(forward, `${field} ${direction}`).toEqual(all);
        const backward: string[] = [];
        let before: string | null = null;
        for (let guard = 0; guard < 10; guard += 1) {
          const page: Page = await list(user, { orderBy, last: 4, before });
          backward.unshift(...titles(page));
          if (!page.pageInfo.hasPreviousPage) break;
          before = page.pageInfo.startCursor;
        }
        expect(backward, `${field} ${direction} backward`).toEqual(all);
      }
    }
    // Undated tasks come last under DUE_AT in both directions.
    for (const direction of ["ASC", "DESC"]) {
      const ordered = titles(await list(user, { orderBy: { field: "DUE_AT", direction }, first: 100 }));
      const dated = seeds.filter((s) => s.dueAt).length;
      expect(ordered.slice(dated).every((title) => seeds.find((s) => s.title === title)?.dueAt === null)).toBe(true);
    }
  });

  it("should reject a cursor of another order, a forged cursor and bad filter values as BAD_USER_INPUT naming the field", async () => {
    const user = await newUser(server);
    await seed(user, [{ title: "a" }, { title: "b" }]);
    const byDue = await list(user, { orderBy: { field: "DUE_AT" }, first: 1 });
    const cases: [Record<string, unknown>, string][] = [
      [{ first: 1, after: byDue.pageInfo.endCursor }, "after"],
      [{ orderBy: { field: "DUE_AT", direction: "DESC" }, first: 1, after: byDue.pageInfo.endCursor }, "after"],
      [{ orderBy: { field: "PRIORITY" }, last: 1, before: byDue.pageInfo.endCursor }, "before"],
      [
        { first: 1, after: Buffer.from('TaskCursor:["PRIORITY","DESC","SUPREME","00000000-0000-0000-0000-000000000000"]').toString("base64") },
        "after",
      ],
      [{ first: 1, after: "garbage" }, "after"],
      [{ filter: { search: "x".repeat(201) }, first: 1 }, "filter.search"],
      [{ filter: { search: "nul\u0000" }, first: 1 }, "filter.search"],
      [{ filter: { labels: [" "] }, first: 1 }, "filter.labels[0]"],
      [{ filter: { labels: Array.from({ length: 21 }, (_, i) => `l${i}`) }, first: 1 }, "filter.labels"],
      [{ filter: { status: "PENDING" }, status: "COMPLETED", first: 1 }, "status"],
      [{ first: 1, last: 1 }, "last"],
    ];
    for (const [variables, field] of cases) {
      const response = await user.gql(LIST, variables);
      expect(response.errors?.[0]?.extensions, JSON.stringify(variables)).toMatchObject({ code: "BAD_USER_INPUT", field });
    }
  });

  it("should use the search and overdue indexes (EXPLAIN) for a user with many tasks", async () => {
    const userId = `explain-${Date.now()}`;
    await sql.query(
      `INSERT INTO tasks (user_id, title, description, due_at) SELECT $1, 'task ' || g, 'note ' || g, now() + (g - 1500) * interval '1 hour' FROM generate_series(1, 3000) g`,
      [userId],
    );
    await sql.query(`INSERT INTO tasks (user_id, title) VALUES ($1, 'call the dentist')`, [userId]);
    await sql.query("ANALYZE tasks");
    // Whether the planner prefers an index over a scan of a few thousand rows depends on the whole
    // shared table's statistics (a fresh CI database chose a Seq Scan once); what the code owns is
    // that each index applies to the query as the API writes it, so scans are priced out here.
    // B10 in `npm run bench` reports the plain EXPLAIN among 10,000 tasks.
    const plan = async (query: string) => {
      await sql.query("BEGIN");
      try {
        await sql.query("SET LOCAL enable_seqscan = off");
        return (await sql.query(`EXPLAIN ${query}`, [userId])).rows.map((row) => row["QUERY PLAN"]).join("\n");
      } finally {
        await sql.query("ROLLBACK");
      }
    };
    const searchPlan = await plan(`SELECT id FROM tasks WHERE user_id = $1 AND search_vector @@ websearch_to_tsquery('english', 'dentist')`);
    expect(searchPlan).toContain("tasks_search_vector_idx");
    const overduePlan = await plan(`SELECT id FROM tasks WHERE user_id = $1 AND completed = false AND due_at < now() ORDER BY due_at LIMIT 20`);
    expect(overduePlan).toContain("tasks_user_id_completed_due_at_idx");
    await sql.query("DELETE FROM tasks WHERE user_id = $1", [userId]);
  });
});
