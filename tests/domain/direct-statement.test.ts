import { randomUUID } from "node:crypto";
import { afterAll, describe, expect, it } from "vitest";
import { directRows, StatementNames } from "../../src/domain/direct-statement.js";
import { Prisma } from "../../src/generated/prisma/client.js";
import { testDb } from "../helpers/db.js";

/**
 * Statements on the pg pool as named prepared statements (src/domain/direct-statement.ts): each
 * caller's names are bounded on their own, and a migration that changes what a prepared
 * statement returns is not an error a request sees.
 */

describe("statement names", () => {
  it("should name each text once, and run texts past the bound unnamed", () => {
    const names = new StatementNames("probe", 2);
    expect(names.nameOf("SELECT 1")).toBe("probe_1");
    expect(names.nameOf("SELECT 2")).toBe("probe_2");
    expect(names.nameOf("SELECT 1")).toBe("probe_1");
    expect(names.nameOf("SELECT 3")).toBeUndefined();
    expect(names.nameOf("SELECT 2")).toBe("probe_2");
  });

  it("should keep one caller's names when another's are used up", () => {
    const pages = new StatementNames("pages", 3);
    const turns = new StatementNames("turns", 3);
    for (let i = 0; i < 10; i += 1) pages.nameOf(`SELECT ${i}`);
    expect(pages.nameOf("SELECT 99")).toBeUndefined();
    expect(turns.nameOf("SELECT 99")).toBe("turns_1");
  });
});

describe("a prepared statement after a migration", () => {
  const db = testDb({ poolSize: 1 });
  const table = `direct_probe_${randomUUID().replace(/-/g, "")}`;

  afterAll(async () => {
    await db.$executeRawUnsafe(`DROP TABLE IF EXISTS ${table}`);
    await db.$disconnect();
  });

  it("should answer with the new column type when a migration changed what the statement returns", async () => {
    await db.$executeRawUnsafe(`CREATE TABLE ${table} (id int PRIMARY KEY, label varchar(20))`);
    await db.$executeRawUnsafe(`INSERT INTO ${table} VALUES (1, 'before')`);
    const names = new StatementNames("migrated", 10);
    const read = () => directRows<{ label: unknown }>(db, Prisma.sql`SELECT label FROM ${Prisma.raw(table)} WHERE id = ${1}`, names);
    // Prepared on the pool's one connection, and planned there.
    expect(await read()).toEqual([{ label: "before" }]);
    expect(await read()).toEqual([{ label: "before" }]);

    await db.$executeRawUnsafe(`ALTER TABLE ${table} ALTER COLUMN label TYPE int USING 7`);

    // Postgres refuses the cached plan (0A000); the statement runs again unnamed.
    expect(await read()).toEqual([{ label: 7 }]);
    expect(await read()).toEqual([{ label: 7 }]);
  });
});
