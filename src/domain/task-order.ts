import { Prisma, type TaskPriority } from "../generated/prisma/client.js";
import { badInput } from "../lib/errors.js";
import { isUuid } from "../lib/ids.js";
import { TASK_PRIORITIES } from "./task-query.js";

/**
 * The orders of a task list and their cursors. Every order ends with the id
 * (in the same direction), so no two rows tie and a page boundary is exact.
 * A cursor carries the order it came from, the boundary row's key in that
 * order and its id; paging compares against those values alone (keyset), so
 * a cursor never makes the database look a row up: one that names another
 * user's task reveals nothing, and a deleted row's cursor still pages.
 */

export type TaskOrderField = "CREATED_AT" | "DUE_AT" | "PRIORITY" | "UPDATED_AT";
export type OrderDirection = "ASC" | "DESC";
export interface TaskOrder {
  field: TaskOrderField;
  direction: OrderDirection;
}

/** The list's order when none is asked for: newest first. */
export const DEFAULT_TASK_ORDER: TaskOrder = { field: "CREATED_AT", direction: "DESC" };

/** The direction when none is given: the soonest due, the most urgent, the newest first. */
const NATURAL_DIRECTION: Record<TaskOrderField, OrderDirection> = { CREATED_AT: "DESC", UPDATED_AT: "DESC", DUE_AT: "ASC", PRIORITY: "DESC" };

export function taskOrder(field: TaskOrderField, direction?: OrderDirection | null): TaskOrder {
  return { field, direction: direction ?? NATURAL_DIRECTION[field] };
}

type Key = string | null;

interface OrderColumn {
  column: Prisma.Sql;
  /** DUE_AT: tasks without a due date come last in both directions. */
  nullable: boolean;
  keyOf(row: TaskKeys): Key;
  /** The cursor's key as an SQL value of the column's type (a bound parameter and a cast). */
  value(key: string): Prisma.Sql;
  valid(key: unknown): boolean;
}

/** The field an order's key is read from (with the id, what a cursor is made of). */
export const ORDER_KEY_FIELD = { CREATED_AT: "createdAt", UPDATED_AT: "updatedAt", DUE_AT: "dueAt", PRIORITY: "priority" } as const satisfies Record<
  TaskOrderField,
  keyof TaskKeys
>;

/** The columns an order reads from a row. */
export interface TaskKeys {
  id: string;
  createdAt: Date;
  updatedAt: Date;
  dueAt?: Date | null;
  priority?: TaskPriority;
}

const isInstant = (key: unknown) => typeof key === "string" && !Number.isNaN(Date.parse(key));
const instant = (key: string) => Prisma.sql`${key}::timestamptz`;

const COLUMNS: Record<TaskOrderField, OrderColumn> = {
  CREATED_AT: {
    column: Prisma.sql`tasks.created_at`,
    nullable: false,
    keyOf: (row) => row.createdAt.toISOString(),
    value: instant,
    valid: isInstant,
  },
  UPDATED_AT: {
    column: Prisma.sql`tasks.updated_at`,
    nullable: false,
    keyOf: (row) => row.updatedAt.toISOString(),
    value: instant,
    valid: isInstant,
  },
  DUE_AT: {
    column: Prisma.sql`tasks.due_at`,
    nullable: true,
    keyOf: (row) => row.dueAt?.toISOString() ?? null,
    value: instant,
    valid: (key) => key === null || isInstant(key),
  },
  PRIORITY: {
    column: Prisma.sql`tasks.priority`,
    nullable: false,
    keyOf: (row) => row.priority ?? "NONE",
    value: (key) => Prisma.sql`${key}::task_priority`,
    valid: (key) => typeof key === "string" && (TASK_PRIORITIES as readonly string[]).includes(key),
  },
};

const CURSOR_PREFIX = "TaskCursor:";

interface Cursor {
  key: Key;
  id: string;
}

export function encodeTaskCursor(order: TaskOrder, row: TaskKeys): string {
  // A row read without its order's key (task-list.ts selects it) would make a cursor that silently points elsewhere.
  if (row[ORDER_KEY_FIELD[order.field]] === undefined) throw new Error(`a ${order.field} cursor needs the row's ${ORDER_KEY_FIELD[order.field]}`);
  const body = JSON.stringify([order.field, order.direction, COLUMNS[order.field].keyOf(row), row.id]);
  return Buffer.from(CURSOR_PREFIX + body, "utf8").toString("base64");
}

/** The parts of a task cursor, whatever its order; undefined when it is not one. */
function cursorParts(cursor: string): { field: TaskOrderField; direction: OrderDirection; key: Key; id: string } | undefined {
  const text = Buffer.from(cursor, "base64").toString("utf8");
  if (!text.startsWith(CURSOR_PREFIX) || Buffer.from(text, "utf8").toString("base64") !== cursor) return undefined;
  let parts: unknown;
  try {
    parts = JSON.parse(text.slice(CURSOR_PREFIX.length));
  } catch {
    return undefined;
  }
  if (!Array.isArray(parts) || parts.length !== 4) return undefined;
  const [field, direction, key, id] = parts as unknown[];
  if (typeof field !== "string" || !(field in COLUMNS) || (direction !== "ASC" && direction !== "DESC") || !isUuid(id)) return undefined;
  const column = COLUMNS[field as TaskOrderField];
  if (!column.valid(key)) return undefined;
  return { field: field as TaskOrderField, direction, key: key as Key, id };
}

/** True for a cursor the task list hands out, under any order (the connection guard's shape check). */
export function isTaskCursor(cursor: string): boolean {
  return cursorParts(cursor) !== undefined;
}

/** The cursor's boundary; BAD_USER_INPUT on `field` when it is not a cursor of this order. */
export function decodeTaskCursor(cursor: string, order: TaskOrder, field: string): Cursor {
  const parts = cursorParts(cursor);
  if (!parts) throw badInput(field, "is not a cursor of this connection");
  if (parts.field !== order.field || parts.direction !== order.direction) {
    throw badInput(field, `is a cursor of the order ${parts.field} ${parts.direction}, not of ${order.field} ${order.direction}`);
  }
  return { key: parts.key, id: parts.id };
}

const REVERSED: Record<OrderDirection, OrderDirection> = { ASC: "DESC", DESC: "ASC" };

/** The rows that come after the cursor in `order` (nulls last): `reversed` gives those before it. */
export function beyondCursor(order: TaskOrder, cursor: Cursor, reversed = false): Prisma.Sql {
  const { column, nullable, value } = COLUMNS[order.field];
  const direction = reversed ? REVERSED[order.direction] : order.direction;
  const op = Prisma.raw(direction === "ASC" ? ">" : "<");
  if (cursor.key === null) {
    // The cursor is among the trailing nulls: after it, only nulls further on; before it, every non-null too.
    return reversed
      ? Prisma.sql`(${column} IS NOT NULL OR tasks.id ${op} ${cursor.id}::uuid)`
      : Prisma.sql`(${column} IS NULL AND tasks.id ${op} ${cursor.id}::uuid)`;
  }
  const past = Prisma.sql`(${column}, tasks.id) ${op} (${value(cursor.key)}, ${cursor.id}::uuid)`;
  return nullable && !reversed ? Prisma.sql`(${past} OR ${column} IS NULL)` : past;
}

/** ORDER BY for `order`, or its exact reverse (the nulls first) for paging backward. */
export function orderBySql(order: TaskOrder, reversed = false): Prisma.Sql {
  const { column } = COLUMNS[order.field];
  const direction = Prisma.raw(reversed ? REVERSED[order.direction] : order.direction);
  const nulls = Prisma.raw(reversed ? "NULLS FIRST" : "NULLS LAST");
  return Prisma.sql`${column} ${direction} ${nulls}, tasks.id ${direction}`;
}
