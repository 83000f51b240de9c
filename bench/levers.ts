/**
 * `npx tsx bench/levers.ts [lever…]`: A/B of one change at a time, for the
 * "What we tried" section of BENCHMARKS.md. On a shared machine two runs
 * minutes apart differ by more than most levers move, so both variants run
 * side by side: the API as it is (A), the API with the lever (B: a patched
 * copy of the repository, or other settings) and the raw server, all up at
 * once on the same database, loaded in turn for ROUNDS short rounds in a
 * rotating order. Reported: the median of B/A per round, for B1 and B2, and
 * each server's CPU time per request (the steadier figure on a shared machine).
 */
import { cpSync, existsSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { randomUUID } from "node:crypto";
import os from "node:os";
import path from "node:path";
import pg from "pg";
import { signHs256 } from "../src/auth/verifier.js";
import { benchDatabase } from "./database.js";
import { median } from "./lib/figure.js";
import { ROOT } from "./lib/program.js";
import { startApi, startRaw, type ApiProcess } from "./lib/servers.js";
import { ADD, LIST, load } from "./scenarios/http-load.js";
import { trustedManifest } from "./lib/trusted-manifest.js";

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 4);
const SECONDS = Number(process.env.BENCH_ROUND_SECONDS ?? 5);
/** Which figures to load (BENCH_LEVER_IDS=B1 for a read-path lever): both by default. */
const IDS = (process.env.BENCH_LEVER_IDS ?? "B1,B2").split(",").filter((id): id is "B1" | "B2" => id === "B1" || id === "B2");

interface Patch {
  file: string;
  find: string;
  replace: string;
}

interface Lever {
  patches?: Patch[];
  env?: Record<string, string>;
}

/** Each lever as the change from the code as it is. */
const LEVERS: Record<string, Lever> = {
  /** No change: how far apart two identical servers measure (calibration). */
  "a-a": { env: {} },
  "no-token-cache": {
    patches: [
      {
        file: "src/auth/verifier.ts",
        find: "const verifier = cachingVerifier(signatureVerifier(auth, clock), {",
        replace: "const verifier = signatureVerifier(auth, clock); void ({",
      },
    ],
  },
  "no-parse-validate-cache": {
    patches: [
      { file: "src/server/yoga.ts", find: "    multipart: false,\n", replace: "    multipart: false,\n    parserAndValidationCache: false,\n" },
    ],
  },
  "no-query-plan-cache": {
    patches: [
      {
        file: "src/db/client.ts",
        find: "  const client = new PrismaClient({\n",
        replace: "  const client = new PrismaClient({\n    queryPlanCacheMaxSize: 0,\n",
      },
    ],
  },
  "select-mode": {
    patches: [
      {
        file: "src/schema/task.ts",
        find: 'export const TaskRef = builder.prismaNode("Task", {\n',
        replace: 'export const TaskRef = builder.prismaNode("Task", {\n  select: { id: true },\n',
      },
    ],
  },
  /** The direct statements (the list read, a turn's opening, step and end) through Prisma's `$queryRaw` again instead of the pg pool (src/domain/direct-statement.ts). */
  "no-direct-read": {
    patches: [
      {
        file: "src/domain/direct-statement.ts",
        find: "  const pool = directPool(db);\n",
        replace: "  const pool = undefined as ReturnType<typeof directPool>;\n",
      },
    ],
  },
  /** Every edge's cursor encoded up front, and the column names mapped by a regex per cell, as before. */
  "no-lazy-mapping": {
    patches: [
      {
        file: "src/domain/task-list.ts",
        find: "tasks.map((node) => lazyEdge(order, node))",
        replace: "tasks.map((node) => ({ cursor: encodeTaskCursor(order, node), node }))",
      },
      {
        file: "src/domain/tasks.ts",
        find: "  let field = FIELDS.get(column);\n",
        replace: "  let field = FIELDS.get(column);\n  FIELDS.clear();\n  field = undefined;\n",
      },
    ],
  },
  /** The bench's two documents not registered as trusted: parsed (cached), validated (cached), limited and run on graphql-js. */
  untrusted: { env: { TRUSTED_DOCUMENTS_FILE: "" } },
  /** Trusted documents without the compiled executor (graphql-js executes them; parsing and validation still skipped). */
  "no-jit": {
    patches: [{ file: "src/server/compiled-execution.ts", find: "      if (!documents.has(args.document)) return;\n", replace: "      return;\n" }],
  },
  /** pino writing through a buffered, asynchronous destination (4 KB writes) instead of one write(2) per line. */
  "log-buffered": {
    patches: [
      {
        file: "src/lib/logger.ts",
        find: "    destination,\n",
        replace: "    destination ?? pino.destination({ dest: 1, sync: false, minLength: 4096 }),\n",
      },
    ],
  },
  /** No AsyncLocalStorage around a request (its promise hooks off; log lines lose their request id): what the request id costs. */
  "no-als": {
    patches: [
      {
        file: "src/server/front-door.ts",
        find: "    requestContext.run({ requestId }, () => void serve(yoga, logger, req, res, refused));\n",
        replace: "    void requestContext;\n    void serve(yoga, logger, req, res, refused);\n",
      },
    ],
  },
  /** The list read selecting the raw baseline's seven columns, without the user's time zone in its FROM (an experiment: the answer loses fields). */
  "seven-columns": {
    patches: [
      {
        file: "src/domain/task-list.ts",
        find: "    SELECT ${pageColumns(fields, order.field)} FROM tasks, ${userZoneFrom(userId)}\n    WHERE ${Prisma.join(conditions",
        replace:
          "    SELECT tasks.id, tasks.user_id, tasks.title, tasks.description, tasks.completed, tasks.created_at, tasks.updated_at FROM tasks\n    WHERE ${Prisma.join(conditions",
      },
    ],
  },
  /** Every column of a task page again, whatever its document reads (src/schema/requested-fields.ts not applied). */
  "all-columns": {
    patches: [{ file: "src/schema/task.ts", find: "args, pageFields(info));", replace: "args, void info);" }],
  },
  /** The cost limit walking every document on every request again, variables or not (src/server/limits/query-cost.ts). */
  "cost-per-request": {
    patches: [
      {
        file: "src/server/limits/query-cost.ts",
        find: "  if (operation.variableDefinitions?.length) return walk();\n",
        replace: "  return walk();\n",
      },
    ],
  },
  /** The list read without the user's time zone in its FROM (only the overdue filter reads it). */
  "no-zone": {
    patches: [
      {
        file: "src/domain/task-list.ts",
        find: "    SELECT ${pageColumns(fields, order.field)} FROM tasks, ${userZoneFrom(userId)}\n",
        replace: "    SELECT ${pageColumns(fields, order.field)} FROM tasks\n",
      },
    ],
  },
  /** Every Node's id through Pothos' own async resolver again (src/schema/sync-node-ids.ts not applied). */
  "async-node-ids": {
    patches: [
      {
        file: "src/schema/index.ts",
        find: "export const schema = syncNodeIds(builder.toSchema({ sortSchema: true }));",
        replace: "export const schema = builder.toSchema({ sortSchema: true });\nvoid syncNodeIds;",
      },
    ],
  },
  "pool-5": { env: { DATABASE_POOL_SIZE: "5" } },
  "pool-20": { env: { DATABASE_POOL_SIZE: "20" } },
  "log-warn": { env: { LOG_LEVEL: "warn" } },
};

/** A copy of the repository's code with the patches applied, sharing node_modules. */
function patchedCopy(patches: Patch[]): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), "todo-lever-"));
  for (const entry of ["src", "prisma", "package.json", "tsconfig.json"]) cpSync(path.join(ROOT, entry), path.join(dir, entry), { recursive: true });
  symlinkSync(path.join(ROOT, "node_modules"), path.join(dir, "node_modules"));
  for (const patch of patches) {
    const file = path.join(dir, patch.file);
    const text = readFileSync(file, "utf8");
    if (!text.includes(patch.find)) throw new Error(`lever patch does not apply to ${patch.file}: ${patch.find}`);
    writeFileSync(file, text.replace(patch.find, patch.replace));
  }
  return dir;
}

const names = process.argv.slice(2).length > 0 ? process.argv.slice(2) : Object.keys(LEVERS);
const database = await benchDatabase("todo-bench-levers-");
const userId = `bench-lever-${randomUUID()}`;
const sql = new pg.Client({ connectionString: database.url });
await sql.connect();
await sql.query("INSERT INTO tasks (user_id, title) SELECT $1, 'Task ' || i FROM generate_series(1, 200) AS i", [userId]);
const raw = await startRaw(database.url, userId);
const manifest = trustedManifest([LIST, ADD]);

function withoutEmpty(env: Record<string, string>): Record<string, string> {
  return Object.fromEntries(Object.entries(env).filter(([, value]) => value !== ""));
}

const bodies = { B1: JSON.stringify({ query: LIST }), B2: JSON.stringify({ query: ADD, variables: { title: "bench" } }) };
const rawPaths = { B1: "/list", B2: "/add" };

for (const name of names) {
  const lever = LEVERS[name];
  if (!lever) throw new Error(`unknown lever ${name}; known: ${Object.keys(LEVERS).join(", ")}`);
  const root = lever.patches ? patchedCopy(lever.patches) : undefined;
  const tokens = new Map<ApiProcess, string>();
  const start = async (variant: { root?: string; env?: Record<string, string> }) => {
    let token = "";
    const api = await startApi({
      databaseUrl: database.url,
      token: async (secret) => (token = await signHs256(secret, { sub: userId, expiresIn: "1h" })),
      root: variant.root,
      // As in B1/B2 (http-load.ts); a lever's empty TRUSTED_DOCUMENTS_FILE leaves the setting unset.
      env: withoutEmpty({ TRUSTED_DOCUMENTS_FILE: manifest, ...variant.env }),
    });
    tokens.set(api, token);
    return api;
  };
  // A patched B runs from its sources under tsx; A then does too, so the two differ by the patch alone.
  const a = await start({ root: root === undefined ? undefined : ROOT });
  const b = await start({ root, env: lever.env });
  try {
    for (const id of IDS) {
      const sides = {
        A: () => load(a.url, bodies[id], { authorization: `Bearer ${tokens.get(a)}` }, SECONDS, a.program.child.pid),
        B: () => load(b.url, bodies[id], { authorization: `Bearer ${tokens.get(b)}` }, SECONDS, b.program.child.pid),
        raw: () => load(`${raw.baseUrl}${rawPaths[id]}`, bodies[id], {}, SECONDS, raw.program.child.pid),
      };
      for (const side of Object.values(sides)) await side(); // warm-up
      const rps: Record<keyof typeof sides, number[]> = { A: [], B: [], raw: [] };
      const cpu: Record<keyof typeof sides, number[]> = { A: [], B: [], raw: [] };
      const order = Object.keys(sides) as (keyof typeof sides)[];
      for (let round = 0; round < ROUNDS; round += 1) {
        for (const side of [...order.slice(round % 3), ...order.slice(0, round % 3)]) {
          const result = await sides[side]();
          rps[side].push(result.rps);
          if (result.cpuMsPerRequest !== null) cpu[side].push(result.cpuMsPerRequest);
        }
      }
      const ratios = rps.B.map((value, i) => value / rps.A[i]!);
      console.log(
        `${name} ${id}: B/A ${median(ratios).toFixed(2)} (rounds ${ratios.map((r) => r.toFixed(2)).join(" ")}); ` +
          `A ${median(rps.A).toFixed(0)}, B ${median(rps.B).toFixed(0)}, raw ${median(rps.raw).toFixed(0)} req/s; ` +
          `A/raw ${(median(rps.A) / median(rps.raw)).toFixed(2)}, B/raw ${(median(rps.B) / median(rps.raw)).toFixed(2)}; ` +
          `CPU ms/request A ${median(cpu.A).toFixed(2)}, B ${median(cpu.B).toFixed(2)}, raw ${median(cpu.raw).toFixed(2)} (B/A ${(median(cpu.B) / median(cpu.A)).toFixed(2)}); load ${os.loadavg()[0]!.toFixed(1)}`,
      );
    }
  } finally {
    await a.program.stop();
    await b.program.stop();
    if (root && existsSync(root)) rmSync(root, { recursive: true, force: true });
  }
}
await raw.program.stop();
await sql.query("DELETE FROM tasks WHERE user_id = $1", [userId]);
await sql.end();
await database.close();
process.exit(0);
