/**
 * `npx tsx bench/syscalls-probe.ts`: the system calls of the API and of the raw server under
 * B1's load (strace -c on each process for 3 s of autocannon), into .scratch/strace-{api,raw}.txt.
 * Written to check the B1 profile's writev share: both servers make the same two writev calls
 * per request (the response, and the query); a CPU profile over-samples time spent in system calls.
 */
import { randomUUID } from "node:crypto";
import { spawn } from "node:child_process";
import pg from "pg";
import { signHs256 } from "../src/auth/verifier.js";
import { benchDatabase } from "./database.js";
import { startApi, startRaw } from "./lib/servers.js";
import { ADD, LIST, load } from "./scenarios/http-load.js";
import { trustedManifest } from "./lib/trusted-manifest.js";

const SECONDS = 3;
const database = await benchDatabase("todo-bench-probe-");
const userId = `probe-${randomUUID()}`;
const sql = new pg.Client({ connectionString: database.url });
await sql.connect();
await sql.query("INSERT INTO tasks (user_id, title) SELECT $1, 'Task ' || i FROM generate_series(1, 200) AS i", [userId]);
let token = "";
const api = await startApi({
  databaseUrl: database.url,
  token: async (s) => (token = await signHs256(s, { sub: userId, expiresIn: "1h" })),
  env: { TRUSTED_DOCUMENTS_FILE: trustedManifest([LIST, ADD]) },
});
const raw = await startRaw(database.url, userId);
const body = JSON.stringify({ query: LIST });
for (const [name, url, headers, pid] of [
  ["api", api.url, { authorization: `Bearer ${token}` }, api.program.child.pid!],
  ["raw", `${raw.baseUrl}/list`, {}, raw.program.child.pid!],
] as const) {
  await load(url, body, headers, 2);
  const tracer = spawn("strace", ["-f", "-c", "-p", String(pid), "-o", `.scratch/strace-${name}.txt`]);
  await new Promise((r) => setTimeout(r, 500));
  const result = await load(url, body, headers, SECONDS, pid);
  tracer.kill("SIGINT");
  await new Promise((r) => tracer.once("exit", r));
  console.log(`${name}: ${result.requests} requests in ${SECONDS} s; system calls in .scratch/strace-${name}.txt`);
}
await api.program.stop();
await raw.program.stop();
await sql.query("DELETE FROM tasks WHERE user_id = $1", [userId]);
await sql.end();
await database.close();
process.exit(0);
