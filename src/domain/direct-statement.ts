import { SpanKind, SpanStatusCode, trace } from "@opentelemetry/api";
import type pg from "pg";
import { directPool, type DbClient } from "../db/client.js";
import type { Prisma } from "../generated/prisma/client.js";

/**
 * A statement on a hot path (a task page, a turn's opening, step and end),
 * straight on the pg pool when the client has one (db/client.ts directPool):
 * the same SQL and parameters as `$queryRaw`, without Prisma's raw-query
 * machinery, and as a named prepared statement when its caller's `names`
 * still has room. Prisma's driver adapter sends statements unnamed (its
 * opt-in statementNameGenerator would name every one of them, with the
 * generic-plan and result-type risks below for all), so Postgres parses and
 * plans each anew: for a turn's large CTE statements that was about 0.6 ms
 * each, and Prisma's own work per raw query most of a task page's ORM cost
 * (BENCHMARKS.md). Inside a transaction, on the neon driver, or with a query
 * listener attached, it is `$queryRaw` as before.
 *
 * The rows are node-postgres' own: timestamptz as Date, jsonb parsed, text[]
 * as string[], enums as strings, as `$queryRaw` gives them for the columns
 * read here (an int8 or numeric column would differ: none is read this way).
 * Errors are node-postgres' too; db/unavailable.ts and
 * domain/prisma-errors.ts recognise both kinds.
 */
export async function directRows<T>(db: DbClient, query: Prisma.Sql, names?: StatementNames): Promise<T[]> {
  const pool = directPool(db);
  if (!pool) return db.$queryRaw<T[]>(query);
  // Prisma's instrumentation sees no query here, so the statement gets its span here (a no-op without tracing).
  const span = tracer.startSpan("pg.query", { kind: SpanKind.CLIENT, attributes: { "db.system.name": "postgresql", "db.query.text": query.text } });
  try {
    return await run<T>(pool, query, names?.nameOf(query.text));
  } catch (error) {
    span.setStatus({ code: SpanStatusCode.ERROR });
    throw error;
  } finally {
    span.end();
  }
}

/** SQLSTATE 0A000, "cached plan must not change result type": a migration changed a column a prepared statement returns. */
const STALE_PLAN = "0A000";

async function run<T>(pool: pg.Pool, query: Prisma.Sql, name: string | undefined): Promise<T[]> {
  const send = async (as: string | undefined) =>
    (await pool.query<T & Record<string, unknown>>({ text: query.text, values: query.values, name: as })).rows;
  try {
    return await send(name);
  } catch (error) {
    // The pool drops the connection that failed; the statement runs unnamed once, so no request sees a migration.
    if (name === undefined || (error as { code?: unknown }).code !== STALE_PLAN) throw error;
    return send(undefined);
  }
}

const tracer = trace.getTracer("todo-assistant-api/domain");

/**
 * A bounded set of statement names, one per distinct SQL text, so each pooled
 * connection parses and plans a text once. Each caller has its own, so texts
 * a client can vary without end (a page's columns, filter and order come from
 * its document) cannot use up the names of the turn's fixed few. Past the
 * bound a text runs unnamed rather than growing every connection's cache.
 */
export class StatementNames {
  private readonly names = new Map<string, string>();

  constructor(
    private readonly prefix: string,
    private readonly max: number,
  ) {}

  nameOf(text: string): string | undefined {
    const known = this.names.get(text);
    if (known !== undefined || this.names.size >= this.max) return known;
    const name = `${this.prefix}_${this.names.size + 1}`;
    this.names.set(text, name);
    return name;
  }
}
