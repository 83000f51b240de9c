import { execFile, spawn, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { createRequire } from "node:module";
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath, pathToFileURL } from "node:url";
import { promisify } from "node:util";

/** The repository root. */
export const ROOT = fileURLToPath(new URL("../..", import.meta.url));
/** tsx's loader by absolute URL, so a program runs from any working directory (B6 runs one in a temp folder). */
const TSX_LOADER = pathToFileURL(createRequire(import.meta.url).resolve("tsx")).href;

export interface Program {
  child: ChildProcess;
  /** What it wrote so far (stdout and stderr), for error messages. */
  output(): string;
  stop(): Promise<void>;
}

/**
 * Runs a TypeScript entry point (relative to ROOT, or `root`: a patched copy, bench/levers.ts) on this Node with tsx's loader, as `npm run dev`
 * runs src/main.ts, in a process of its own so client and server are measured the same way.
 */
export function startProgram(script: string, options: { env: Record<string, string>; cwd?: string; nodeArgs?: string[]; root?: string }): Program {
  return spawnNode([...(options.nodeArgs ?? []), "--import", TSX_LOADER, `${options.root ?? ROOT}/${script}`], options);
}

/**
 * The node flags of package.json's start script (`exec node <flags> dist/main.js`), so every bench runs
 * the API, and its raw baseline, with what `npm start` gives it (a V8 heap setting, README "Start").
 */
export const START_NODE_FLAGS: string[] = (() => {
  const { scripts } = JSON.parse(readFileSync(path.join(ROOT, "package.json"), "utf8")) as { scripts: { start: string } };
  const words = scripts.start.split(/\s+/);
  return words.slice(words.indexOf("node") + 1, words.indexOf("dist/main.js")).filter((word) => word.startsWith("--"));
})();

/** Builds dist/ as `npm start`'s prestart does (scripts/build.mjs: a no-op when it is current); returns dist/main.js. */
export async function buildDist(): Promise<string> {
  await promisify(execFile)(process.execPath, [path.join(ROOT, "scripts", "build.mjs"), "--quiet"], { cwd: ROOT });
  return path.join(ROOT, "dist", "main.js");
}

/** Runs a built JavaScript file (an absolute path) with plain Node, as `npm start` runs dist/main.js. */
export function startBuilt(file: string, options: { env: Record<string, string>; cwd?: string; nodeArgs?: string[] }): Program {
  return spawnNode([...(options.nodeArgs ?? []), file], options);
}

function spawnNode(args: string[], options: { env: Record<string, string>; cwd?: string }): Program {
  // Output goes to a file, not a pipe: reading a pipe would cost the bench process (the load generator) CPU.
  const logDir = mkdtempSync(path.join(tmpdir(), "todo-bench-log-"));
  const logFile = path.join(logDir, "output.log");
  const fd = openSync(logFile, "w");
  const child = spawn(process.execPath, args, {
    cwd: options.cwd ?? ROOT,
    // Only what the program needs: a developer's DATABASE_URL or LOG_LEVEL must not leak in.
    env: { PATH: process.env.PATH ?? "", HOME: process.env.HOME ?? "", ...options.env },
    stdio: ["ignore", fd, fd],
  });
  closeSync(fd);
  const exited = once(child, "exit");
  const output = () => readFileSync(logFile, "utf8").slice(-4000);
  return {
    child,
    output,
    stop: async () => {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill("SIGTERM");
        const killed = await Promise.race([exited.then(() => false), sleep(15_000).then(() => true)]);
        if (killed) {
          child.kill("SIGKILL");
          await exited;
        }
      }
      rmSync(logDir, { recursive: true, force: true });
    },
  };
}

/** Polls `probe` until it resolves true; fails when the program exits or `timeoutMs` passes. */
export async function waitUntil(program: Program, probe: () => Promise<boolean>, timeoutMs: number, what: string, everyMs = 5): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    if (program.child.exitCode !== null) throw new Error(`${what}: the program exited (${program.child.exitCode}):\n${program.output()}`);
    if (await probe().catch(() => false)) return;
    if (performance.now() > deadline) throw new Error(`${what}: not ready after ${timeoutMs} ms:\n${program.output()}`);
    await sleep(everyMs);
  }
}

/** POSTs a GraphQL document; true on a 200 with data and no errors. */
export async function graphqlOk(url: string, token: string, query: string): Promise<boolean> {
  const response = await fetch(url, {
    method: "POST",
    headers: { "content-type": "application/json", authorization: `Bearer ${token}` },
    body: JSON.stringify({ query }),
  });
  if (response.status !== 200) return false;
  const json = (await response.json()) as { data?: unknown; errors?: unknown };
  return json.data !== undefined && json.data !== null && json.errors === undefined;
}
