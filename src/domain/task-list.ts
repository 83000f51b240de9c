import type { DbClient } from "../db/client.js";
import { Prisma, type Task } from "../generated/prisma/client.js";
import { badInput } from "../lib/errors.js";
import { directRows, StatementNames } from "./direct-statement.js";
import { beyondCursor, decodeTaskCursor, encodeTaskCursor, ORDER_KEY_FIELD, orderBySql, type TaskOrder, type TaskOrderField } from "./task-order.js";
import { taskFilterSql, userZoneFrom, type TaskFilter } from "./task-query.js";
import { TASK_COLUMNS, taskColumns, taskFromRow, type TaskField, type TaskRow } from "./tasks.js";

/** A connection's page arguments, as GraphQL has them. */
export interface PageArgs {
  first?: number | null | undefined;
  after?: string | null | undefined;
  last?: number | null | undefined;
  before?: string | null | undefined;
}

export interface TaskPage {
  edges: { cursor: string; node: Task }[];
  pageInfo: { hasNextPage: boolean; hasPreviousPage: boolean; startCursor: string | null; endCursor: string | null };
}

/** The page size when neither first nor last is given (the connection guard bounds both at 100). */
export const DEFAULT_PAGE_SIZE = 20;

/**
 * One page of the user's tasks matching `filter` (checked by checkTaskFilter),
 * in `order`, from a keyset cursor (task-order.ts): one statement, the filter
 * and the boundary in its WHERE, LIMIT size + 1 to learn whether more follow.
 * Backward (last/before) reads the reverse order and turns the page round.
 *
 * `fields`, when given, are the only fields the caller will read from a node:
 * the statement reads their columns, the id and the order's key (the cursors)
 * and no more, and each node holds just those. A page of 20 read 14 columns
 * where a typical list shows four; parsing the other ten (two timestamps, an
 * array) was about a sixth of a page's CPU (BENCHMARKS.md, "What we tried").
 * Without `fields`, every column.
 */
export async function listTaskPage(
  db: DbClient,
  userId: string,
  filter: TaskFilter,
  order: TaskOrder,
  page: PageArgs,
  fields?: ReadonlySet<TaskField>,
): Promise<TaskPage> {
  if (typeof page.first === "number" && typeof page.last === "number") throw badInput("last", "cannot be combined with first");
  const backward = typeof page.last === "number";
  const size = (backward ? page.last : page.first) ?? DEFAULT_PAGE_SIZE;
  const conditions = [taskFilterSql(userId, filter)];
  if (page.after) conditions.push(beyondCursor(order, decodeTaskCursor(page.after, order, "after")));
  if (page.before) conditions.push(beyondCursor(order, decodeTaskCursor(page.before, order, "before"), true));
  const rows = await directRows<TaskRow>(
    db,
    Prisma.sql`
    SELECT ${pageColumns(fields, order.field)} FROM tasks, ${userZoneFrom(userId)}
    WHERE ${Prisma.join(conditions, " AND ")}
    ORDER BY ${orderBySql(order, backward)}
    LIMIT ${size + 1}`,
    // A search's plan depends on its words (how many rows they match): it is planned with them every time.
    filter.search ? undefined : PAGE_STATEMENTS,
  );
  const more = rows.length > size;
  const tasks = rows.slice(0, size).map(taskFromRow);
  if (backward) tasks.reverse();
  const edges = tasks.map((node) => lazyEdge(order, node));
  return {
    edges,
    pageInfo: {
      hasNextPage: backward ? Boolean(page.before) : more,
      hasPreviousPage: backward ? more : Boolean(page.after),
      // Encoded only when asked for, as the edges' own are.
      get startCursor() {
        return edges[0]?.cursor ?? null;
      },
      get endCursor() {
        return edges.at(-1)?.cursor ?? null;
      },
    },
  };
}

/** The names of the pages' statements, apart from the turn's: a client's documents choose a page's columns, filter and order. */
const PAGE_STATEMENTS = new StatementNames("page", 100);

/** The columns a page reads, per set of fields (the schema hands out one set per document) and order. */
const PAGE_COLUMNS = new WeakMap<ReadonlySet<TaskField>, Map<TaskOrderField, Prisma.Sql>>();

function pageColumns(fields: ReadonlySet<TaskField> | undefined, field: TaskOrderField): Prisma.Sql {
  if (fields === undefined) return TASK_COLUMNS;
  let byOrder = PAGE_COLUMNS.get(fields);
  if (byOrder === undefined) PAGE_COLUMNS.set(fields, (byOrder = new Map()));
  let columns = byOrder.get(field);
  if (columns === undefined) byOrder.set(field, (columns = taskColumns(new Set([...fields, "id", ORDER_KEY_FIELD[field]]))));
  return columns;
}

/** An edge whose cursor is encoded when first read: most pages ask for none, or for pageInfo's two only. */
function lazyEdge(order: TaskOrder, node: Task): TaskPage["edges"][number] {
  let cursor: string | undefined;
  return {
    node,
    get cursor() {
      return (cursor ??= encodeTaskCursor(order, node));
    },
  };
}

/**
 * The first `limit` tasks matching `filter` in `order`, and how many match in
 * all: what a tool shows the model (never the whole list). One statement.
 */
export async function searchTasks(
  db: DbClient,
  userId: string,
  filter: TaskFilter,
  order: TaskOrder,
  limit: number,
): Promise<{ tasks: Task[]; total: number }> {
  const rows = await db.$queryRaw<(TaskRow & { matched: bigint })[]>`
    WITH matching AS (SELECT ${TASK_COLUMNS} FROM tasks, ${userZoneFrom(userId)} WHERE ${taskFilterSql(userId, filter)})
    SELECT page.*, counted.matched FROM (SELECT count(*) AS matched FROM matching) AS counted
    LEFT JOIN LATERAL (SELECT * FROM matching AS tasks ORDER BY ${orderBySql(order)} LIMIT ${limit}) AS page ON true`;
  const total = Number(rows[0]?.matched ?? 0);
  const tasks = rows.filter((row) => row.id !== null).map(({ matched: _matched, ...row }) => taskFromRow(row));
  return { tasks, total };
}

/** The ids of the user's tasks matching `filter`, at most `limit` (oldest first), and how many match in all. */
export async function matchingTaskIds(db: DbClient, userId: string, filter: TaskFilter, limit: number): Promise<{ ids: string[]; total: number }> {
  const rows = await db.$queryRaw<{ id: string | null; matched: bigint }[]>`
    WITH matching AS (SELECT tasks.id, tasks.created_at FROM tasks, ${userZoneFrom(userId)} WHERE ${taskFilterSql(userId, filter)})
    SELECT page.id::text AS id, counted.matched FROM (SELECT count(*) AS matched FROM matching) AS counted
    LEFT JOIN LATERAL (SELECT id FROM matching ORDER BY created_at, id LIMIT ${limit}) AS page ON true`;
  return { ids: rows.flatMap((row) => (row.id === null ? [] : [row.id])), total: Number(rows[0]?.matched ?? 0) };
}
