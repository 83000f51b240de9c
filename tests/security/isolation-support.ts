import { randomUUID } from "node:crypto";
import { expect } from "vitest";
import type { Db } from "../../src/db/client.js";
import { toGlobalId, type NodeTypename } from "../../src/lib/ids.js";

/**
 * The bookkeeping of the isolation attack suite: the ids an attacker tries
 * (each of the victim's rows, written every way an id can be written), the
 * answer a same-shaped id that names nothing gets, the victim's rows as bytes,
 * and the ledger of attempts and leaks that the suite reports.
 */

export const NODE_TYPES: readonly NodeTypename[] = ["Task", "Conversation", "Message", "Turn", "TaskEvent"];

/** Where an attempt came in; the report counts attempts by these. */
export type EntryPoint = "query" | "node" | "mutation" | "subscription" | "mcp" | "assistant";
export const ENTRY_POINTS: readonly EntryPoint[] = ["query", "node", "mutation", "subscription", "mcp", "assistant"];

/** One of the victim's rows that the attacker aims at. */
export interface Target {
  type: NodeTypename;
  /** The row's database id. */
  uuid: string;
  globalId: string;
  label: string;
}

export function target(type: NodeTypename, uuid: string, label: string): Target {
  return { type, uuid, globalId: toGlobalId(type, uuid), label };
}

/**
 * One way of writing a target's id into an argument: the value sent, an id of
 * exactly the same shape that names no row (`ghost`), and the error code both
 * must get. The attempt passes only if its answer and the ghost's are the
 * same, byte for byte once each id is replaced by a placeholder.
 */
export interface IdForm {
  label: string;
  value: string;
  ghost: string;
  /** Forms of one shape share one ghost answer per operation. */
  shape: string;
  /** The code of the one error expected; null: no error (a list answered). */
  code: "NOT_FOUND" | "BAD_USER_INPUT" | null;
  /** True when the owner, sending this same value, gets the row (the form a control repeats). */
  owned: boolean;
}

/**
 * Every way the attacker can write `t`'s id where an id of `accepts` is
 * wanted: its global id as it is (NOT_FOUND if the type fits, else the
 * wrong-type BAD_USER_INPUT), its uuid re-encoded as each accepted type
 * (NOT_FOUND), and the bare database id (BAD_USER_INPUT).
 */
export function idForms(t: Target, accepts: readonly NodeTypename[]): IdForm[] {
  const fits = accepts.includes(t.type);
  const forms: IdForm[] = [
    {
      label: fits ? `${t.label}` : `${t.label} (a ${t.type} id where ${accepts.join("/")} is wanted)`,
      value: t.globalId,
      ghost: toGlobalId(t.type, randomUUID()),
      shape: `global:${t.type}`,
      code: fits ? "NOT_FOUND" : "BAD_USER_INPUT",
      owned: fits,
    },
  ];
  for (const type of accepts) {
    if (type === t.type) continue;
    forms.push({
      label: `${t.label}'s uuid written as a ${type} id`,
      value: toGlobalId(type, t.uuid),
      ghost: toGlobalId(type, randomUUID()),
      shape: `global:${type}`,
      code: "NOT_FOUND",
      owned: false,
    });
  }
  forms.push({ label: `${t.label}'s raw database id`, value: t.uuid, ghost: randomUUID(), shape: "raw", code: "BAD_USER_INPUT", owned: false });
  return forms;
}

/** A row's cursor as its connection hands it out (Pothos: base64 of `GPC:S:<uuid>`). */
export function cursorOf(uuid: string): string {
  return Buffer.from(`GPC:S:${uuid}`, "utf8").toString("base64");
}

/** What a client sees, as text, with `id` replaced by a placeholder, so two ids' answers compare. */
export function visible(answer: unknown, ...ids: string[]): string {
  let text = JSON.stringify(answer) ?? "undefined";
  for (const id of [...ids].sort((a, b) => b.length - a.length)) text = text.replaceAll(id, "<ID>");
  return text;
}

/** Tables with a user_id column: every table that holds a user's data (a table added later is included). */
export async function userTables(db: Db): Promise<string[]> {
  const rows = await db.$queryRaw<{ table_name: string }[]>`
    SELECT DISTINCT table_name::text FROM information_schema.columns
    WHERE table_schema = current_schema() AND column_name = 'user_id' ORDER BY 1`;
  return rows.map((row) => row.table_name);
}

/** Every row the user has, in every such table, as Postgres' own JSON text of the whole row. */
export async function snapshot(db: Db, userId: string): Promise<Record<string, string[]>> {
  const result: Record<string, string[]> = {};
  for (const table of await userTables(db)) {
    const rows = await db.$queryRawUnsafe<{ row: string }[]>(
      `SELECT to_jsonb(t)::text AS row FROM "${table.replaceAll('"', '""')}" t WHERE user_id = $1 ORDER BY 1`,
      userId,
    );
    result[table] = rows.map((row) => row.row);
  }
  return result;
}

/** The ids (database and global) of every row the user has: none of them may reach the attacker. */
export async function rowIds(db: Db, userId: string): Promise<string[]> {
  const rows = await snapshot(db, userId);
  const typeOf: Record<string, NodeTypename> = {
    tasks: "Task",
    conversations: "Conversation",
    messages: "Message",
    turns: "Turn",
    task_events: "TaskEvent",
  };
  const ids: string[] = [];
  for (const [table, texts] of Object.entries(rows)) {
    for (const text of texts) {
      const id = (JSON.parse(text) as { id?: unknown }).id;
      if (typeof id !== "string") continue;
      ids.push(id);
      const type = typeOf[table];
      if (type) ids.push(toGlobalId(type, id));
    }
  }
  return ids;
}

/** What must never appear in anything the attacker receives (after the ids it sent are taken out). */
export class Secrets {
  private markers: string[] = [];

  constructor(
    private readonly db: Db,
    private readonly userId: string,
    /** A word every text of the victim carries (titles, contents, descriptions). */
    private readonly word: string,
  ) {}

  /** Reads the victim's current row ids: call after the victim's rows change. */
  async refresh(): Promise<void> {
    this.markers = [this.word, this.userId, ...(await rowIds(this.db, this.userId))];
  }

  /** The markers found in `text`, which must already have the attack's own ids replaced. */
  foundIn(text: string): string[] {
    return this.markers.filter((marker) => text.includes(marker));
  }
}

/**
 * Runs `run` over `items`, `limit` at a time. The attempts are independent of
 * each other (only the rows before and after all of them are compared), and a
 * few in flight keep the server and the database busy while one waits.
 */
export async function each<T>(items: readonly T[], run: (item: T) => Promise<void>, limit = 4): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const item = items[next] as T;
      next += 1;
      await run(item);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
}

/**
 * Counts attempts per entry point and per root field or tool, and keeps every
 * leak found. Any finding counts as one: an answer that differs from an
 * unknown id's (existence revealed), an id or text of the victim's in it, a
 * change to her rows, or a code other than the documented NOT_FOUND /
 * BAD_USER_INPUT (a path that does not answer as designed is not trusted).
 */
export class Ledger {
  readonly attempts = new Map<EntryPoint, number>(ENTRY_POINTS.map((entry) => [entry, 0]));
  readonly attacksOn = new Map<string, number>();
  readonly controlsOn = new Map<string, number>();
  readonly leaks: string[] = [];

  /** One attempt; each finding is a leak. */
  record(entry: EntryPoint, field: string, label: string, findings: readonly string[]): void {
    this.attempts.set(entry, (this.attempts.get(entry) ?? 0) + 1);
    this.attacksOn.set(field, (this.attacksOn.get(field) ?? 0) + 1);
    for (const finding of findings) this.leaks.push(`${entry} ${field} with ${label}: ${finding}`);
  }

  /** An owner's request on the same path that worked: proof the attack path is live. */
  control(field: string): void {
    this.controlsOn.set(field, (this.controlsOn.get(field) ?? 0) + 1);
  }

  get total(): number {
    return [...this.attempts.values()].reduce((sum, count) => sum + count, 0);
  }

  /** Fails with every leak recorded since `from` (a length of `leaks` taken earlier). */
  expectNoLeaksSince(from: number): void {
    expect(this.leaks.slice(from)).toEqual([]);
  }

  summary(): string {
    const parts = ENTRY_POINTS.map((entry) => `${entry} ${this.attempts.get(entry) ?? 0}`);
    return `isolation attack suite: ${this.total} attempts (${parts.join(", ")}), ${this.leaks.length} leaks`;
  }
}
