import { SpanKind, SpanStatusCode, trace } from "@opentelemetry/api";
import { directPool, type DbClient } from "../db/client.js";
import type { Prisma } from "../generated/prisma/client.js";

/**
 * A statement on a hot path (a task page, a turn's opening, step and end),
 * straight on the pg pool when the client has one (db/client.ts directPool):
 * the same SQL and parameters as `$queryRaw`, as a named prepared statement,
 * without Prisma's raw-query machinery. Prisma's driver adapter sends every
 * statement unnamed, so Postgres parses and plans it every time: for a turn's
 * large CTE statements that was about 0.6 ms each, and Prisma's own work per
 * raw query most of a task page's ORM cost (BENCHMARKS.md). Inside a
 * transaction, on the neon driver, or with a query listener attached, it is
 * `$queryRaw` as before.
 *
 * The rows are node-postgres' own: timestamptz as Date, jsonb parsed, text[]
 * as string[], enums as strings, as `$queryRaw` gives them for the columns
 * read here (an int8 or numeric column would differ: none is read this way).
 * Errors are node-postgres' too; db/unavailable.ts and
 * domain/prisma-errors.ts recognise both kinds.
 */
export async function directRows<T>(db: DbClient, query: Prisma.Sql): Promise<T[]> {
  const pool = directPool(db);
  if (!pool) return db.$queryRaw<T[]>(query);
  // Prisma's instrumentation sees no query here, so the statement gets its span here (a no-op without tracing).
  const span = tracer.startSpan("pg.query", { kind: SpanKind.CLIENT, attributes: { "db.system.name": "postgresql", "db.query.text": query.text } });
  try {
    const result = await pool.query<T & Record<string, unknown>>({ text: query.text, values: query.values, name: statementName(query.text) });
    return result.rows;
  } catch (error) {
    span.setStatus({ code: SpanStatusCode.ERROR });
    throw error;
  } finally {
    span.end();
  }
}

const tracer = trace.getTracer("todo-assistant-api/domain");

/**
 * One name per distinct SQL text, so each pooled connection parses and plans it once.
 * The texts vary only with the shape of a filter, an order, a page's columns or a
 * turn's write (values are parameters), so there are few; past the bound a text runs unnamed rather than growing every
 * connection's statement cache.
 */
const NAMES = new Map<string, string>();
const MAX_NAMED = 200;

function statementName(text: string): string | undefined {
  const known = NAMES.get(text);
  if (known !== undefined || NAMES.size >= MAX_NAMED) return known;
  const name = `hot_${NAMES.size + 1}`;
  NAMES.set(text, name);
  return name;
}
