import { randomUUID } from "node:crypto";
import { freePort } from "../../src/db/embedded.js";
import { buildDist, graphqlOk, START_NODE_FLAGS, startBuilt, startProgram, waitUntil, type Program } from "./program.js";

/** Settings for the API child; BENCH_API_ENV (k=v,k=v) adds more, for trying a lever without editing code. */
function extraEnv(): Record<string, string> {
  const entries = (process.env.BENCH_API_ENV ?? "")
    .split(",")
    .filter((pair) => pair.includes("="))
    // At the first "=" only: a value may hold more (NODE_OPTIONS=--max-semi-space-size=64).
    .map((pair) => [pair.slice(0, pair.indexOf("=")), pair.slice(pair.indexOf("=") + 1)]);
  return Object.fromEntries(entries);
}

export interface ApiProcess {
  program: Program;
  url: string;
  secret: string;
  /** Spawn → first successful query. */
  startupMs: number;
}

/**
 * The real API as `npm start` runs it in production (dist/main.js, NODE_ENV=production, default
 * pool and log level), on the bench's database, on a free loopback port. Ready on the first
 * successful query. `cpuProfDir` turns on `node --cpu-prof`.
 */
export async function startApi(options: {
  databaseUrl: string;
  token: (secret: string) => Promise<string>;
  cpuProfDir?: string;
  /** A patched copy of the repository to run instead (bench/levers.ts). */
  root?: string;
  env?: Record<string, string>;
}): Promise<ApiProcess> {
  const secret = randomUUID() + randomUUID();
  const port = await freePort();
  const env = {
    NODE_ENV: "production",
    HOST: "127.0.0.1",
    PORT: String(port),
    DATABASE_URL: options.databaseUrl,
    AUTH_JWT_SECRET: secret,
    LOG_LEVEL: process.env.BENCH_LOG_LEVEL ?? "info",
    ...extraEnv(),
    ...options.env,
  };
  const nodeArgs = [...START_NODE_FLAGS, ...(options.cpuProfDir ? ["--cpu-prof", `--cpu-prof-dir=${options.cpuProfDir}`] : [])];
  const built = await builtServer(options.root);
  const spawned = performance.now();
  const program = built === undefined ? startProgram("src/main.ts", { env, root: options.root, nodeArgs }) : startBuilt(built, { env, nodeArgs });
  const url = `http://127.0.0.1:${port}/graphql`;
  const token = await options.token(secret);
  await waitUntil(program, () => graphqlOk(url, token, "{ tasks(first: 1) { edges { node { id } } } }"), 60_000, "the API");
  return { program, url, secret, startupMs: performance.now() - spawned };
}

/**
 * What `npm start` runs: dist/main.js (buildDist) under
 * plain node, without tsx's loader and source maps. A patched copy of the repository (bench/levers.ts)
 * runs from its sources under tsx, as does every run with BENCH_API_RUNTIME=tsx: a lever's A/B then
 * compares like with like.
 */
async function builtServer(root: string | undefined): Promise<string | undefined> {
  if (root !== undefined || process.env.BENCH_API_RUNTIME === "tsx") return undefined;
  return buildDist();
}

/** bench/raw-server.ts on a free port, serving `userId`'s tasks. */
export async function startRaw(databaseUrl: string, userId: string): Promise<{ program: Program; baseUrl: string }> {
  const port = await freePort();
  const program = startProgram("bench/raw-server.ts", {
    env: { BENCH_RAW_URL: databaseUrl, BENCH_RAW_USER: userId, PORT: String(port), DATABASE_POOL_SIZE: extraEnv().DATABASE_POOL_SIZE ?? "10" },
    // The API's heap settings: the baseline gets whatever the API gets.
    nodeArgs: START_NODE_FLAGS,
  });
  const baseUrl = `http://127.0.0.1:${port}`;
  await waitUntil(program, async () => (await fetch(`${baseUrl}/list`, { method: "POST", body: "{}" })).status === 200, 30_000, "the raw server");
  return { program, baseUrl };
}
