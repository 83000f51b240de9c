import { randomUUID } from "node:crypto";
import pg from "pg";
import { signHs256 } from "../../src/auth/verifier.js";
import { figure, median, type Figure } from "../lib/figure.js";
import type { BenchContext } from "../lib/scenario.js";
import { startApi } from "../lib/servers.js";

/**
 * B10 (issue 25): one user with 10,000 tasks. A full-text search and the
 * overdue filter, each a page of 20 through the real API, against the plain
 * `tasks(first: 20)` of the same user in the same run (ratio goal ≤ 2), plus
 * EXPLAIN of each filter's query: the index it uses.
 */

const TASKS = 10_000;
const ROUNDS = Number(process.env.BENCH_SEARCH_ROUNDS ?? 300);

const QUERIES = {
  plain: `{ tasks(first: 20) { edges { node { id title } } } }`,
  search: `{ tasks(first: 20, filter: { search: "dentist appoint" }) { edges { node { id title } } } }`,
  overdue: `{ tasks(first: 20, filter: { overdue: true }, orderBy: { field: DUE_AT }) { edges { node { id title } } } }`,
} as const;

async function seed(url: string, userId: string): Promise<void> {
  const sql = new pg.Client({ connectionString: url });
  await sql.connect();
  // Mostly ordinary tasks; 1 in 100 mentions the dentist; a third are due, half of those in the past.
  await sql.query(
    `INSERT INTO tasks (user_id, title, description, due_at, completed)
     SELECT $1, CASE WHEN g % 100 = 0 THEN 'Dentist appointment ' || g ELSE 'Task number ' || g END,
            'Some notes about item ' || g,
            CASE WHEN g % 3 = 0 THEN now() + (g - ${TASKS / 2}) * interval '10 minutes' END, g % 4 = 0
     FROM generate_series(1, ${TASKS}) AS g`,
    [userId],
  );
  await sql.query("ANALYZE tasks");
  await sql.end();
}

async function explain(url: string, userId: string): Promise<string> {
  const sql = new pg.Client({ connectionString: url });
  await sql.connect();
  const plan = async (query: string) => (await sql.query(`EXPLAIN ${query}`, [userId])).rows.map((row) => String(row["QUERY PLAN"])).join(" / ");
  const indexOf = (text: string) => text.match(/tasks_[a-z_]+_idx/g)?.join(", ") ?? "no index";
  const search = await plan(
    `SELECT id FROM tasks WHERE user_id = $1 AND search_vector @@ (websearch_to_tsquery('english', 'dentist') && to_tsquery('simple', 'appoint:*')) ORDER BY created_at DESC, id DESC LIMIT 21`,
  );
  const overdue = await plan(`SELECT id FROM tasks WHERE user_id = $1 AND completed = false AND due_at < now() ORDER BY due_at, id LIMIT 21`);
  await sql.end();
  return `EXPLAIN: search uses ${indexOf(search)}; overdue uses ${indexOf(overdue)}`;
}

async function timeQuery(url: string, token: string, query: string): Promise<number[]> {
  const samples: number[] = [];
  for (let i = 0; i < ROUNDS; i += 1) {
    const started = performance.now();
    const response = await fetch(url, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${token}` },
      body: JSON.stringify({ query }),
    });
    const body = (await response.json()) as { errors?: unknown };
    if (body.errors) throw new Error(`B10 query failed: ${JSON.stringify(body.errors)}`);
    samples.push(performance.now() - started);
  }
  return samples;
}

export async function runSearch(ctx: BenchContext): Promise<Figure[]> {
  const userId = `bench-search-${randomUUID()}`;
  await seed(ctx.url, userId);
  const note = await explain(ctx.url, userId);
  ctx.log(`  ${note}`);
  const api = await startApi({ databaseUrl: ctx.url, token: (secret) => signHs256(secret, { sub: userId, expiresIn: "1h" }) });
  try {
    const token = await signHs256(api.secret, { sub: userId, expiresIn: "1h" });
    for (const query of Object.values(QUERIES)) await timeQuery(api.url, token, query); // warm-up
    // Interleaved rounds, so load on the machine falls on all three alike.
    const medians = { plain: [] as number[], search: [] as number[], overdue: [] as number[] };
    for (let round = 0; round < 3; round += 1) {
      for (const key of ["plain", "search", "overdue"] as const) medians[key].push(median(await timeQuery(api.url, token, QUERIES[key])));
    }
    const plain = median(medians.plain);
    return (["search", "overdue"] as const).map((key) => {
      const ours = median(medians[key]);
      return figure({
        id: "B10",
        figure: `${key} page of 20 among 10,000 tasks, median (ms)`,
        ours,
        baseline: plain,
        unit: "ms",
        goal: "ratio ≤ 2 (baseline: tasks(first: 20))",
        met: ours / plain <= 2,
        note,
      });
    });
  } finally {
    await api.program.stop();
  }
}
