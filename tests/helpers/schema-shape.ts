/**
 * The shape of a Postgres schema as plain, normalised objects: derived from
 * prisma/schema.prisma (what Prisma's migrations should have made) and read
 * back from a database (what they did make). Compare the two with toEqual, or
 * with diffShapes for one line per difference.
 */
import { readFile } from "node:fs/promises";
import { fileURLToPath } from "node:url";
import { getDMMF } from "@prisma/get-dmmf";
import pg from "pg";

export const SCHEMA_FILE = fileURLToPath(new URL("../../prisma/schema.prisma", import.meta.url));

export interface ColumnShape {
  /** information_schema.columns.data_type: "text", "character varying", "USER-DEFINED", "ARRAY", … */
  dataType: string;
  /** information_schema.columns.udt_name: "text", "varchar", "timestamptz", the enum's name, "_text", … */
  udtName: string;
  maxLength: number | null;
  /** Fractional-second digits of date/time columns; null for every other type. */
  datetimePrecision: number | null;
  nullable: boolean;
  /** information_schema.columns.column_default, as Postgres deparses it. */
  default: string | null;
}

export interface IndexShape {
  /** Column names in index order; " DESC" appended where the key sorts descending. */
  columns: string[];
  unique: boolean;
  primary: boolean;
  method: string;
  partial: boolean;
}

export interface ForeignKeyShape {
  columns: string[];
  referencedTable: string;
  referencedColumns: string[];
  onDelete: string;
  onUpdate: string;
}

export interface TableShape {
  columns: Record<string, ColumnShape>;
  /** By index name; the primary key's index is among them. */
  indexes: Record<string, IndexShape>;
  /** By constraint name. */
  foreignKeys: Record<string, ForeignKeyShape>;
}

export interface SchemaShape {
  /** Enum type name → values in declaration order. */
  enums: Record<string, string[]>;
  /** Table name → shape; `_prisma_migrations` is not part of the data model and is left out. */
  tables: Record<string, TableShape>;
}

// ---------------------------------------------------------------------------
// Expected: derived from the Prisma schema
// ---------------------------------------------------------------------------

type Datamodel = Extract<ReturnType<typeof getDMMF>, { datamodel: unknown }>["datamodel"];
type DmmfModel = Datamodel["models"][number];
type DmmfField = DmmfModel["fields"][number];
type DmmfEnum = Datamodel["enums"][number];

const POSTGRES_MAX_IDENTIFIER = 63;

/** Prisma's default constraint/index name: `<table>_<cols>_<suffix>`, trimmed so it fits in 63 bytes. */
export function prismaConstraintName(table: string, columns: readonly string[], suffix: "pkey" | "key" | "idx" | "fkey"): string {
  const base = [table, ...columns].join("_");
  const tail = `_${suffix}`;
  return base.slice(0, POSTGRES_MAX_IDENTIFIER - tail.length) + tail;
}

export async function readDatamodel(schemaFile = SCHEMA_FILE): Promise<Datamodel> {
  const text = await readFile(schemaFile, "utf8");
  const document = getDMMF({ datamodel: text });
  if (!("datamodel" in document)) {
    throw new Error(`getDMMF failed on ${schemaFile}: ${document.type}: ${document.reason}`);
  }
  return document.datamodel;
}

export async function expectedShape(schemaFile = SCHEMA_FILE): Promise<SchemaShape> {
  return shapeFromDatamodel(await readDatamodel(schemaFile));
}

/**
 * Columns the schema declares as Unsupported(), which the DMMF leaves out
 * (its indexes still name them): model → field → column and shape. A stored
 * generated tsvector has no column default in information_schema (its
 * expression is in the migration).
 */
const GENERATED_COLUMNS: Record<string, Record<string, { column: string; shape: ColumnShape }>> = {
  Task: {
    searchVector: {
      column: "search_vector",
      shape: { dataType: "tsvector", udtName: "tsvector", maxLength: null, datetimePrecision: null, nullable: true, default: null },
    },
  },
};

export function shapeFromDatamodel(datamodel: Datamodel): SchemaShape {
  const enumsByName = new Map(datamodel.enums.map((e) => [e.name, e]));
  const modelsByName = new Map(datamodel.models.map((m) => [m.name, m]));
  const tableOf = (model: DmmfModel) => model.dbName ?? model.name;
  const columnOf = (model: DmmfModel, fieldName: string) => {
    const field = model.fields.find((f) => f.name === fieldName);
    const generated = GENERATED_COLUMNS[model.name]?.[fieldName];
    if (generated) return generated.column;
    if (!field) throw new Error(`schema-shape: ${model.name} has no field ${fieldName}`);
    return field.dbName ?? field.name;
  };

  const shape: SchemaShape = { enums: {}, tables: {} };
  for (const e of datamodel.enums) {
    shape.enums[e.dbName ?? e.name] = e.values.map((v) => v.dbName ?? v.name);
  }

  for (const model of datamodel.models) {
    const table = tableOf(model);
    const tableShape: TableShape = { columns: {}, indexes: {}, foreignKeys: {} };
    shape.tables[table] = tableShape;

    for (const generated of Object.values(GENERATED_COLUMNS[model.name] ?? {})) tableShape.columns[generated.column] = generated.shape;
    for (const field of model.fields) {
      if (field.kind === "object") {
        const from = field.relationFromFields ?? [];
        if (from.length === 0) continue; // the back-relation side holds no columns
        const target = modelsByName.get(field.type);
        if (!target) throw new Error(`schema-shape: ${model.name}.${field.name} points at unknown model ${field.type}`);
        const columns = from.map((name) => columnOf(model, name));
        const allRequired = from.every((name) => model.fields.find((f) => f.name === name)?.isRequired);
        tableShape.foreignKeys[prismaConstraintName(table, columns, "fkey")] = {
          columns,
          referencedTable: tableOf(target),
          referencedColumns: (field.relationToFields ?? []).map((name) => columnOf(target, name)),
          // Prisma's defaults: Restrict for required relations, SetNull for optional ones; onUpdate Cascade.
          onDelete: referentialAction(field.relationOnDelete ?? (allRequired ? "Restrict" : "SetNull")),
          onUpdate: referentialAction(field.relationOnUpdate ?? "Cascade"),
        };
        continue;
      }
      if (field.kind === "unsupported") {
        throw new Error(`schema-shape: ${model.name}.${field.name} is Unsupported(); teach schema-shape.ts its type`);
      }
      tableShape.columns[field.dbName ?? field.name] = expectedColumn(model, field, enumsByName);
    }
  }

  for (const index of datamodel.indexes) {
    const model = modelsByName.get(index.model);
    if (!model) throw new Error(`schema-shape: index on unknown model ${index.model}`);
    if (index.type === "fulltext") throw new Error(`schema-shape: fulltext index on ${model.name} is not a Postgres feature`);
    const table = tableOf(model);
    const columns = index.fields.map((f) => columnOf(model, f.name));
    const suffix = index.type === "id" ? "pkey" : index.type === "unique" ? "key" : "idx";
    const name = index.dbName ?? (index.type === "id" ? prismaConstraintName(table, [], "pkey") : prismaConstraintName(table, columns, suffix));
    const tableShape = shape.tables[table];
    if (!tableShape) throw new Error(`schema-shape: no table ${table}`);
    tableShape.indexes[name] = {
      columns: index.fields.map((f) => columnOf(model, f.name) + (f.sortOrder === "desc" ? " DESC" : "")),
      unique: index.type !== "normal",
      primary: index.type === "id",
      method: (index.algorithm ?? "BTree").toLowerCase(),
      partial: false,
    };
  }
  return shape;
}

function referentialAction(action: string): string {
  const actions: Record<string, string> = {
    Cascade: "CASCADE",
    Restrict: "RESTRICT",
    NoAction: "NO ACTION",
    SetNull: "SET NULL",
    SetDefault: "SET DEFAULT",
  };
  const sql = actions[action];
  if (!sql) throw new Error(`schema-shape: unknown referential action ${action}`);
  return sql;
}

interface BaseType {
  dataType: string;
  udtName: string;
  maxLength: number | null;
  datetimePrecision: number | null;
  /** The type as a cast in a deparsed default: 'x'::<castName>. */
  castName: string;
}

/** Prisma's Postgres type for a scalar field: its native type when given, else the scalar type's default. */
function baseType(model: DmmfModel, field: DmmfField, enumsByName: Map<string, DmmfEnum>): BaseType {
  const where = `${model.name}.${field.name}`;
  if (field.kind === "enum") {
    const e = enumsByName.get(field.type);
    if (!e) throw new Error(`schema-shape: ${where} has unknown enum ${field.type}`);
    const name = e.dbName ?? e.name;
    return { dataType: "USER-DEFINED", udtName: name, maxLength: null, datetimePrecision: null, castName: name };
  }
  const [native, args = []] = field.nativeType ?? [];
  const arg = args[0] === undefined ? null : Number(args[0]);
  const plain = (dataType: string, udtName: string, castName = dataType): BaseType => ({
    dataType,
    udtName,
    maxLength: null,
    datetimePrecision: null,
    castName,
  });
  const key = `${field.type}${native ? ` @db.${native}` : ""}`;
  switch (key) {
    case "String":
    case "String @db.Text":
      return plain("text", "text");
    case "String @db.VarChar":
      return { ...plain("character varying", "varchar"), maxLength: arg };
    case "String @db.Char":
      return { ...plain("character", "bpchar", "bpchar"), maxLength: arg ?? 1 };
    case "String @db.Uuid":
      return plain("uuid", "uuid");
    case "Int":
    case "Int @db.Integer":
      return plain("integer", "int4");
    case "Int @db.SmallInt":
      return plain("smallint", "int2");
    case "BigInt":
    case "BigInt @db.BigInt":
      return plain("bigint", "int8");
    case "Float":
    case "Float @db.DoublePrecision":
      return plain("double precision", "float8");
    case "Float @db.Real":
      return plain("real", "float4");
    case "Boolean":
    case "Boolean @db.Boolean":
      return plain("boolean", "bool");
    case "DateTime":
      return { ...plain("timestamp without time zone", "timestamp"), datetimePrecision: 3 };
    case "DateTime @db.Timestamp":
      return { ...plain("timestamp without time zone", "timestamp"), datetimePrecision: arg ?? 6 };
    case "DateTime @db.Timestamptz":
      return { ...plain("timestamp with time zone", "timestamptz"), datetimePrecision: arg ?? 6 };
    case "DateTime @db.Date":
      return { ...plain("date", "date"), datetimePrecision: 0 };
    case "Json":
    case "Json @db.JsonB":
      return plain("jsonb", "jsonb");
    case "Json @db.Json":
      return plain("json", "json");
    case "Bytes":
    case "Bytes @db.ByteA":
      return plain("bytea", "bytea");
    default:
      throw new Error(`schema-shape: no Postgres mapping for ${where} (${key}); teach schema-shape.ts this type`);
  }
}

/**
 * Scalar lists the migrations make NOT NULL (an empty array, never NULL).
 * Prisma cannot declare a required list, so the schema says so in the field's
 * comment and this names them.
 */
const REQUIRED_LISTS = new Set(["tasks.labels", "deleted_tasks.labels"]);

function expectedColumn(model: DmmfModel, field: DmmfField, enumsByName: Map<string, DmmfEnum>): ColumnShape {
  const base = baseType(model, field, enumsByName);
  const type = field.isList
    ? // information_schema reports arrays as ARRAY of _<element udt>, without the element's modifiers.
      { dataType: "ARRAY", udtName: `_${base.udtName}`, maxLength: null, datetimePrecision: null }
    : { dataType: base.dataType, udtName: base.udtName, maxLength: base.maxLength, datetimePrecision: base.datetimePrecision };
  return {
    ...type,
    // Prisma writes scalar lists without NOT NULL.
    nullable: field.isList ? !REQUIRED_LISTS.has(`${model.dbName ?? model.name}.${field.dbName ?? field.name}`) : !field.isRequired,
    default: expectedDefault(model, field, base, enumsByName),
  };
}

/** The column_default Postgres reports for the default Prisma writes into the migration. */
function expectedDefault(model: DmmfModel, field: DmmfField, base: BaseType, enumsByName: Map<string, DmmfEnum>): string | null {
  const where = `${model.name}.${field.name}`;
  if (!field.hasDefaultValue || field.default === undefined) return null;
  const value = field.default;
  if (Array.isArray(value)) {
    // Prisma writes @default([]) as ARRAY[]::<type>[], which Postgres deparses in lower case.
    if (value.length === 0) return `ARRAY[]::${base.castName}[]`;
    throw new Error(`schema-shape: non-empty list default on ${where}; teach schema-shape.ts`);
  }
  if (typeof value === "object" && value !== null && "name" in value) {
    switch (value.name) {
      case "dbgenerated":
        return String(value.args[0] ?? "");
      case "now":
        return "CURRENT_TIMESTAMP";
      case "autoincrement":
        return `nextval('${prismaSequenceName(model, field)}'::regclass)`;
      case "uuid":
      case "cuid":
      case "nanoid":
      case "ulid":
        return null; // generated by the client, not the database
      default:
        throw new Error(`schema-shape: default ${value.name}() on ${where}; teach schema-shape.ts`);
    }
  }
  if (typeof value === "boolean") return String(value);
  if (typeof value === "number") {
    if (!Number.isFinite(value)) throw new Error(`schema-shape: default ${value} on ${where}`);
    return value < 0 ? `'${value}'::${base.castName}` : String(value);
  }
  if (typeof value !== "string") throw new Error(`schema-shape: default ${JSON.stringify(value)} on ${where}; teach schema-shape.ts`);
  const quote = (s: string) => `'${s.replaceAll("'", "''")}'`;
  if (field.kind === "enum") {
    const e = enumsByName.get(field.type);
    const dbValue = e?.values.find((v) => v.name === value)?.dbName ?? value;
    return `${quote(dbValue)}::${base.castName}`;
  }
  if (field.type === "String" || field.type === "Json") return `${quote(value)}::${base.castName}`;
  throw new Error(`schema-shape: literal default ${JSON.stringify(value)} on ${where} (${field.type}); teach schema-shape.ts`);
}

function prismaSequenceName(model: DmmfModel, field: DmmfField): string {
  // SERIAL names its sequence <table>_<column>_seq.
  return `${model.dbName ?? model.name}_${field.dbName ?? field.name}_seq`;
}

// ---------------------------------------------------------------------------
// Actual: read from the database's catalogs (schema `public`)
// ---------------------------------------------------------------------------

const ACTIONS: Record<string, string> = { a: "NO ACTION", r: "RESTRICT", c: "CASCADE", n: "SET NULL", d: "SET DEFAULT" };

export async function actualShape(url: string): Promise<SchemaShape> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return await readShape(client);
  } finally {
    await client.end();
  }
}

async function readShape(client: pg.Client): Promise<SchemaShape> {
  const shape: SchemaShape = { enums: {}, tables: {} };

  const enums = await client.query<{ name: string; value: string }>(`
    SELECT t.typname AS name, e.enumlabel AS value
    FROM pg_type t
    JOIN pg_namespace n ON n.oid = t.typnamespace
    JOIN pg_enum e ON e.enumtypid = t.oid
    WHERE n.nspname = 'public'
    ORDER BY t.typname, e.enumsortorder`);
  for (const row of enums.rows) (shape.enums[row.name] ??= []).push(row.value);

  const tables = await client.query<{ table_name: string }>(`
    SELECT table_name FROM information_schema.tables
    WHERE table_schema = 'public' AND table_type = 'BASE TABLE' AND table_name <> '_prisma_migrations'
    ORDER BY table_name`);
  for (const row of tables.rows) shape.tables[row.table_name] = { columns: {}, indexes: {}, foreignKeys: {} };
  const table = (name: string): TableShape | undefined => shape.tables[name];

  const columns = await client.query<{
    table_name: string;
    column_name: string;
    data_type: string;
    udt_name: string;
    character_maximum_length: number | null;
    datetime_precision: number | null;
    is_nullable: "YES" | "NO";
    column_default: string | null;
  }>(`
    SELECT table_name, column_name, data_type, udt_name, character_maximum_length,
           datetime_precision, is_nullable, column_default
    FROM information_schema.columns
    WHERE table_schema = 'public'
    ORDER BY table_name, ordinal_position`);
  for (const row of columns.rows) {
    const t = table(row.table_name);
    if (!t) continue; // views, _prisma_migrations
    t.columns[row.column_name] = {
      dataType: row.data_type,
      udtName: row.udt_name,
      maxLength: row.character_maximum_length,
      datetimePrecision: row.datetime_precision,
      nullable: row.is_nullable === "YES",
      default: row.column_default,
    };
  }

  const indexes = await client.query<{
    table_name: string;
    index_name: string;
    columns: string[];
    unique: boolean;
    primary: boolean;
    method: string;
    partial: boolean;
  }>(`
    SELECT tc.relname AS table_name,
           ic.relname AS index_name,
           ARRAY(
             SELECT coalesce(a.attname::text, pg_get_indexdef(i.indexrelid, k.n::int, true))
                    || CASE WHEN pg_index_column_has_property(i.indexrelid, k.n::int, 'desc') THEN ' DESC' ELSE '' END
             FROM unnest(i.indkey) WITH ORDINALITY AS k(attnum, n)
             LEFT JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum AND k.attnum <> 0
             WHERE k.n <= i.indnkeyatts
             ORDER BY k.n
           ) AS columns,
           i.indisunique AS unique,
           i.indisprimary AS primary,
           am.amname AS method,
           i.indpred IS NOT NULL AS partial
    FROM pg_index i
    JOIN pg_class ic ON ic.oid = i.indexrelid
    JOIN pg_class tc ON tc.oid = i.indrelid
    JOIN pg_namespace n ON n.oid = tc.relnamespace
    JOIN pg_am am ON am.oid = ic.relam
    WHERE n.nspname = 'public'
    ORDER BY tc.relname, ic.relname`);
  for (const row of indexes.rows) {
    const t = table(row.table_name);
    if (!t) continue;
    t.indexes[row.index_name] = {
      columns: row.columns,
      unique: row.unique,
      primary: row.primary,
      method: row.method,
      partial: row.partial,
    };
  }

  const foreignKeys = await client.query<{
    table_name: string;
    name: string;
    columns: string[];
    referenced_table: string;
    referenced_columns: string[];
    on_delete: string;
    on_update: string;
  }>(`
    SELECT tc.relname AS table_name,
           c.conname AS name,
           ARRAY(SELECT a.attname::text FROM unnest(c.conkey) WITH ORDINALITY AS k(attnum, n)
                 JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.attnum ORDER BY k.n) AS columns,
           rc.relname AS referenced_table,
           ARRAY(SELECT a.attname::text FROM unnest(c.confkey) WITH ORDINALITY AS k(attnum, n)
                 JOIN pg_attribute a ON a.attrelid = c.confrelid AND a.attnum = k.attnum ORDER BY k.n) AS referenced_columns,
           c.confdeltype AS on_delete,
           c.confupdtype AS on_update
    FROM pg_constraint c
    JOIN pg_class tc ON tc.oid = c.conrelid
    JOIN pg_class rc ON rc.oid = c.confrelid
    JOIN pg_namespace n ON n.oid = c.connamespace
    WHERE c.contype = 'f' AND n.nspname = 'public'
    ORDER BY tc.relname, c.conname`);
  for (const row of foreignKeys.rows) {
    const t = table(row.table_name);
    if (!t) continue;
    t.foreignKeys[row.name] = {
      columns: row.columns,
      referencedTable: row.referenced_table,
      referencedColumns: row.referenced_columns,
      onDelete: ACTIONS[row.on_delete] ?? `unknown (${row.on_delete})`,
      onUpdate: ACTIONS[row.on_update] ?? `unknown (${row.on_update})`,
    };
  }
  return shape;
}

// ---------------------------------------------------------------------------
// Comparison
// ---------------------------------------------------------------------------

/**
 * One line per difference, by path: `tables.tasks.columns.title.maxLength: expected 200, actual 300`.
 * Empty when the shapes agree.
 */
export function diffShapes(expected: SchemaShape, actual: SchemaShape): string[] {
  const lines: string[] = [];
  walk("", expected, actual, lines);
  return lines;
}

function walk(path: string, expected: unknown, actual: unknown, lines: string[]): void {
  const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v);
  if (isRecord(expected) && isRecord(actual)) {
    const keys = [...new Set([...Object.keys(expected), ...Object.keys(actual)])].sort();
    for (const key of keys) {
      const sub = path ? `${path}.${key}` : key;
      if (!(key in actual)) lines.push(`${sub}: missing from the database (expected ${JSON.stringify(expected[key])})`);
      else if (!(key in expected)) lines.push(`${sub}: not in the schema (found ${JSON.stringify(actual[key])})`);
      else walk(sub, expected[key], actual[key], lines);
    }
    return;
  }
  if (JSON.stringify(expected) !== JSON.stringify(actual)) {
    lines.push(`${path}: expected ${JSON.stringify(expected)}, actual ${JSON.stringify(actual)}`);
  }
}
