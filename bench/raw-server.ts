/**
 * The raw baseline of B1, B2 and B6: a bare node:http server with a pg pool, run
 * as a child process exactly as the API is. It reads and parses the JSON body,
 * runs the very SQL Prisma sends for the same operation, and answers the same
 * JSON (global ids, ISO dates), with no GraphQL, no ORM and no auth.
 * Env: BENCH_RAW_URL, BENCH_RAW_USER (whose tasks), PORT, DATABASE_POOL_SIZE.
 * B6's embedded baseline adds BENCH_RAW_POSTGRES (the binary), BENCH_RAW_PGDATA
 * (an initialised cluster; its port is BENCH_RAW_URL's) and, as root,
 * BENCH_RAW_PG_UID/GID: it then starts that Postgres itself first, the least a
 * server on its own Postgres can do (spawn, wait until it accepts connections).
 *   POST /list  →  tasks(first: 20) { edges { node { id title completed createdAt } } }
 *   POST /add   →  addTask(input: { title }) { id title completed createdAt }
 */
import { spawn, type ChildProcess } from "node:child_process";
import { createServer, type IncomingMessage } from "node:http";
import pg from "pg";
import { toGlobalId } from "../src/lib/ids.js";

// Copied from what Prisma logs for the API's operations (see bench/scenarios/http-load.ts), so both run the same SQL.
export const LIST_SQL =
  'SELECT "t0"."id", "t0"."user_id" AS "userId", "t0"."title", "t0"."description", "t0"."completed", "t0"."created_at" AS "createdAt", "t0"."updated_at" AS "updatedAt" FROM "public"."tasks" AS "t0" WHERE "t0"."user_id" = $1 ORDER BY "t0"."created_at" DESC, "t0"."id" DESC LIMIT $2 OFFSET $3';
export const INSERT_SQL =
  'INSERT INTO "public"."tasks" ("user_id","title","description","completed") VALUES ($1,$2,$3,$4) RETURNING "public"."tasks"."id", "public"."tasks"."user_id", "public"."tasks"."title", "public"."tasks"."description", "public"."tasks"."completed", "public"."tasks"."created_at", "public"."tasks"."updated_at"';

interface TaskRow {
  id: string;
  title: string;
  completed: boolean;
  createdAt?: Date;
  created_at?: Date;
}

const url = process.env.BENCH_RAW_URL;
const userId = process.env.BENCH_RAW_USER;
if (!url || !userId) throw new Error("bench/raw-server.ts is started by the bench with BENCH_RAW_URL and BENCH_RAW_USER");
const pool = new pg.Pool({ connectionString: url, max: Number(process.env.DATABASE_POOL_SIZE ?? 10) });

const node = (row: TaskRow) => ({
  id: toGlobalId("Task", row.id),
  title: row.title,
  completed: row.completed,
  createdAt: (row.createdAt ?? row.created_at)!.toISOString(),
});

async function body(request: IncomingMessage): Promise<{ variables?: { title?: string } }> {
  const chunks: Buffer[] = [];
  for await (const chunk of request) chunks.push(chunk as Buffer);
  return JSON.parse(Buffer.concat(chunks).toString("utf8")) as { variables?: { title?: string } };
}

const server = createServer((request, response) => {
  void (async () => {
    try {
      const input = await body(request);
      let data: unknown;
      if (request.url === "/list") {
        // Prisma asks for first + 1 rows to know whether there is a next page.
        const { rows } = await pool.query<TaskRow>(LIST_SQL, [userId, 21, 0]);
        data = { tasks: { edges: rows.slice(0, 20).map((row) => ({ node: node(row) })) } };
      } else if (request.url === "/add") {
        const { rows } = await pool.query<TaskRow>(INSERT_SQL, [userId, input.variables?.title ?? "task", null, false]);
        data = { addTask: node(rows[0]!) };
      } else {
        response.writeHead(404).end();
        return;
      }
      response.writeHead(200, { "content-type": "application/json; charset=utf-8" }).end(JSON.stringify({ data }));
    } catch {
      response.writeHead(500).end();
    }
  })();
});
/** The cluster in BENCH_RAW_PGDATA, started and accepting connections; undefined without one. */
async function startOwnPostgres(): Promise<ChildProcess | undefined> {
  const dataDir = process.env.BENCH_RAW_PGDATA;
  if (!dataDir) return undefined;
  const ids = process.env.BENCH_RAW_PG_UID ? { uid: Number(process.env.BENCH_RAW_PG_UID), gid: Number(process.env.BENCH_RAW_PG_GID) } : {};
  const args = ["-D", dataDir, "-p", new URL(url!).port, "-c", "listen_addresses=127.0.0.1"];
  const child = spawn(process.env.BENCH_RAW_POSTGRES!, args, { ...ids, stdio: ["ignore", "ignore", "pipe"], detached: true });
  let output = "";
  await new Promise<void>((resolve, reject) => {
    child.stderr!.setEncoding("utf8").on("data", (chunk: string) => {
      output += chunk;
      if (output.includes("ready to accept connections")) resolve();
    });
    child.once("exit", () => reject(new Error(`postgres exited: ${output}`)));
  });
  return child;
}

const postgres = await startOwnPostgres();
server.listen(Number(process.env.PORT ?? 0), "127.0.0.1");
process.on("SIGTERM", () => {
  server.close();
  server.closeAllConnections();
  void pool.end().then(async () => {
    if (postgres) {
      const exited = new Promise((resolve) => postgres.once("exit", resolve));
      postgres.kill("SIGINT");
      await exited;
    }
    process.exit(0);
  });
});
