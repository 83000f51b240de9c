import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { applyMigrations } from "../../src/db/migrate.js";
import { MIGRATIONS_DIR } from "../../src/db/open.js";
import { databaseUrl, freshDatabase } from "../helpers/db.js";
import { actualShape, diffShapes, expectedShape, type SchemaShape } from "../helpers/schema-shape.js";

describe("prisma/schema.prisma against the migrated database", () => {
  let expected: SchemaShape;
  let actual: SchemaShape;

  beforeAll(async () => {
    expected = await expectedShape();
    actual = await actualShape(databaseUrl());
  });

  it("should derive a non-trivial shape from the schema", () => {
    // Guards against a vacuous pass (e.g. a DMMF change leaving everything empty).
    // Known parts of the model; the full comparison below covers the rest.
    expect(Object.keys(expected.tables)).toEqual(expect.arrayContaining(["conversations", "messages", "tasks"]));
    expect(expected.enums.message_role).toEqual(expect.arrayContaining(["user", "assistant", "tool"]));
    expect(expected.tables.tasks?.columns.title).toEqual({
      dataType: "character varying",
      udtName: "varchar",
      maxLength: 200,
      datetimePrecision: null,
      nullable: false,
      default: null,
    });
    expect(expected.tables.messages?.foreignKeys).toEqual({
      messages_conversation_id_fkey: {
        columns: ["conversation_id"],
        referencedTable: "conversations",
        referencedColumns: ["id"],
        onDelete: "CASCADE",
        onUpdate: "CASCADE",
      },
    });
  });

  it("should have exactly the schema's tables", () => {
    expect(Object.keys(actual.tables).sort()).toEqual(Object.keys(expected.tables).sort());
  });

  it("should have the schema's enum types with their values in order", () => {
    expect(actual.enums).toEqual(expected.enums);
  });

  it("should have the schema's columns, types, nullability and defaults", () => {
    const columns = (shape: SchemaShape) => Object.fromEntries(Object.entries(shape.tables).map(([name, table]) => [name, table.columns]));
    expect(columns(actual)).toEqual(columns(expected));
  });

  it("should have the schema's primary keys, unique and normal indexes", () => {
    const indexes = (shape: SchemaShape) => Object.fromEntries(Object.entries(shape.tables).map(([name, table]) => [name, table.indexes]));
    expect(indexes(actual)).toEqual(indexes(expected));
  });

  it("should have the schema's foreign keys", () => {
    const foreignKeys = (shape: SchemaShape) => Object.fromEntries(Object.entries(shape.tables).map(([name, table]) => [name, table.foreignKeys]));
    expect(foreignKeys(actual)).toEqual(foreignKeys(expected));
  });

  it("should report no difference at all", () => {
    expect(diffShapes(expected, actual)).toEqual([]);
    expect(actual).toEqual(expected);
  });
});

describe("the drift checker", () => {
  let fresh: Awaited<ReturnType<typeof freshDatabase>>;
  let client: pg.Client;
  let expected: SchemaShape;

  beforeAll(async () => {
    expected = await expectedShape();
    fresh = await freshDatabase();
    await applyMigrations({ url: fresh.url, migrationsDir: MIGRATIONS_DIR });
    client = new pg.Client({ connectionString: fresh.url });
    await client.connect();
  });

  afterAll(async () => {
    await client?.end();
    await fresh?.drop();
  });

  it("should find no difference before the database is altered", async () => {
    expect(diffShapes(expected, await actualShape(fresh.url))).toEqual([]);
  });

  it("should report a drifted column type, a dropped index, a changed default and a changed foreign key", async () => {
    // deleted_tasks: tasks.title is part of tasks.search_vector's expression, whose type Postgres will not let change.
    await client.query(`ALTER TABLE deleted_tasks ALTER COLUMN title TYPE varchar(300)`);
    await client.query(`DROP INDEX tasks_user_id_completed_idx`);
    await client.query(`ALTER TABLE tasks ALTER COLUMN completed SET DEFAULT true`);
    await client.query(`ALTER TABLE messages DROP CONSTRAINT messages_conversation_id_fkey`);
    await client.query(
      `ALTER TABLE messages ADD CONSTRAINT messages_conversation_id_fkey FOREIGN KEY (conversation_id)
       REFERENCES conversations(id) ON DELETE RESTRICT ON UPDATE CASCADE`,
    );
    await client.query(`ALTER TYPE message_role ADD VALUE 'drift_probe'`);
    await client.query(`CREATE TABLE stray (id int)`);

    const actual = await actualShape(fresh.url);
    const roles = expected.enums.message_role ?? [];
    expect(actual).not.toEqual(expected);
    expect(diffShapes(expected, actual)).toEqual([
      `enums.message_role: expected ${JSON.stringify(roles)}, actual ${JSON.stringify([...roles, "drift_probe"])}`,
      `tables.deleted_tasks.columns.title.maxLength: expected 200, actual 300`,
      `tables.messages.foreignKeys.messages_conversation_id_fkey.onDelete: expected "CASCADE", actual "RESTRICT"`,
      expect.stringMatching(/^tables\.stray: not in the schema/),
      `tables.tasks.columns.completed.default: expected "false", actual "true"`,
      expect.stringMatching(/^tables\.tasks\.indexes\.tasks_user_id_completed_idx: missing from the database/),
    ]);
  });
});
