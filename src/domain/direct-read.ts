import pg from "pg";
import { directPool, type DbClient } from "../db/client.js";
import type { Prisma } from "../generated/prisma/client.js";

/**
 * A read on a hot path, straight on the pg pool when the client has one
 * (db/client.ts directPool): the same SQL and parameters as `$queryRaw`, as
 * a named prepared statement, without Prisma's raw-query machinery, which
 * was most of a task page's ORM cost. Inside a transaction, on the neon
 * driver, or with a query listener attached, it is `$queryRaw` as before.
 *
 * Each row comes out as one object keyed by `fieldOf(column)` (the direct
 * path reads rows as arrays, so no intermediate object is built). Values are
 * node-postgres' own: timestamptz as Date, text[] as string[], enums as
 * strings, as `$queryRaw` gives them for the columns read here. Errors are
 * node-postgres' too; db/unavailable.ts classifies both kinds.
 */
export async function readRows<T>(db: DbClient, query: Prisma.Sql, fieldOf: (column: string) => string): Promise<T[]> {
  const pool = directPool(db);
  if (!pool) return (await db.$queryRaw<Record<string, unknown>[]>(query)).map((row) => renamed(row, fieldOf) as T);
  const result = await pool.query<unknown[]>({
    text: query.text,
    values: query.values,
    name: statementName(query.text),
    rowMode: "array",
    types: TYPES,
  });
  const fields = result.fields.map((field) => fieldOf(field.name));
  return result.rows.map((values) => {
    const row: Record<string, unknown> = {};
    for (let i = 0; i < fields.length; i += 1) row[fields[i]!] = values[i];
    return row as T;
  });
}

function renamed(row: Record<string, unknown>, fieldOf: (column: string) => string): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const column in row) out[fieldOf(column)] = row[column];
  return out;
}

/** Postgres' usual timestamptz text: "2026-12-07 08:04:12.197+00" (or "+05:30"), millisecond precision at most. */
const USUAL_TIMESTAMPTZ = /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(?:\.\d{1,3})?[+-]\d\d(?::\d\d)?$/;
const TIMESTAMPTZ = 1184;
const defaultTimestamptz = pg.types.getTypeParser(TIMESTAMPTZ, "text");

/**
 * The usual shape as ISO 8601, which the engine's own parser reads (postgres-date's regexes
 * were the largest JavaScript frame of a task page); anything else (BC, infinity, a
 * seconds offset) goes to node-postgres' parser as before.
 */
export function parseTimestamptz(text: string): Date {
  if (!USUAL_TIMESTAMPTZ.test(text)) return defaultTimestamptz(text) as Date;
  const offsetWithoutMinutes = text.charCodeAt(text.length - 3) === 43 || text.charCodeAt(text.length - 3) === 45;
  return new Date(`${text.slice(0, 10)}T${text.slice(11)}${offsetWithoutMinutes ? ":00" : ""}`);
}

const TYPES = {
  getTypeParser: (oid: number, format?: "text" | "binary") =>
    oid === TIMESTAMPTZ && format !== "binary" ? parseTimestamptz : pg.types.getTypeParser(oid, format),
};

/**
 * One name per distinct SQL text, so each pooled connection parses and plans it once.
 * The texts vary only with the shape of a filter and order (values are parameters),
 * so there are few; past the bound a text runs unnamed rather than growing every
 * connection's statement cache.
 */
const NAMES = new Map<string, string>();
const MAX_NAMED = 200;

function statementName(text: string): string | undefined {
  const known = NAMES.get(text);
  if (known !== undefined || NAMES.size >= MAX_NAMED) return known;
  const name = `hot_read_${NAMES.size + 1}`;
  NAMES.set(text, name);
  return name;
}
