import { execFile, spawn, type ChildProcessWithoutNullStreams, type SpawnOptions } from "node:child_process";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { promisify } from "node:util";

/** The repository root: where package.json, src/ and scripts/ are. */
export const ROOT = fileURLToPath(new URL("../..", import.meta.url));

/** tsx's loader by absolute URL, so a program runs from any working directory (a temp folder with its own .env or .data). */
const TSX_LOADER = pathToFileURL(createRequire(import.meta.url).resolve("tsx")).href;

let building: Promise<unknown> | undefined;

/**
 * dist/ as `npm start` runs it, built first if stale (scripts/build.mjs, as prestart does): once
 * per test worker, before programs that run the build start, rather than in each of them at once.
 */
export function ensureBuilt(): Promise<unknown> {
  building ??= promisify(execFile)(process.execPath, ["scripts/build.mjs", "--quiet"], { cwd: ROOT });
  return building;
}

/** Settings the programs read; the test's own environment must not leak any of them in. */
export const SETTINGS = [
  "NODE_ENV",
  "PORT",
  "HOST",
  "DATABASE_URL",
  "DIRECT_URL",
  "DATABASE_DRIVER",
  "DATABASE_POOL_SIZE",
  "DATABASE_CONNECTION_TIMEOUT_MS",
  "EMBEDDED_DATA_DIR",
  "AUTH_JWT_SECRET",
  "AUTH_JWKS_URL",
  "AUTH_JWT_ISSUER",
  "AUTH_JWT_AUDIENCE",
  "COHERE_API_KEY",
  "COHERE_BASE_URL",
  "MCP_AUTH_TOKEN",
  "LOG_LEVEL",
  "SHUTDOWN_GRACE_MS",
  "WEB_UI",
  "CHAT_RATE_LIMIT",
  "REQUEST_TIMEOUT_MS",
  "HEADERS_TIMEOUT_MS",
  "KEEP_ALIVE_TIMEOUT_MS",
  "REALTIME_TRANSPORT",
  "NATS_URL",
  "NATS_SUBJECT_PREFIX",
  "METRICS_PORT",
  "METRICS_HOST",
  "OTEL_EXPORTER_OTLP_ENDPOINT",
  "OTEL_EXPORTER_OTLP_PROTOCOL",
  "OTEL_EXPORTER_OTLP_HEADERS",
  "OTEL_SERVICE_NAME",
];

export interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface Program {
  child: ChildProcessWithoutNullStreams;
  stdout(): string;
  stderr(): string;
  exited: Promise<Exit>;
  /** Resolves once stdout or stderr matches; fails if the program exits or `timeoutMs` passes first. */
  waitFor(pattern: RegExp, timeoutMs?: number): Promise<RegExpMatchArray>;
  /** Resolves with the exit; fails if the program is still running after `timeoutMs`. */
  exit(timeoutMs?: number): Promise<Exit>;
  /** SIGTERM (then SIGKILL after `graceMs`) unless it has exited; resolves with the exit. */
  stop(graceMs?: number): Promise<Exit>;
}

/** The test's environment without any of SETTINGS, plus `env` (undefined values left out). */
function programEnv(env: Record<string, string | undefined> = {}): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [key, value] of Object.entries(process.env)) {
    if (value !== undefined && !SETTINGS.includes(key)) out[key] = value;
  }
  for (const [key, value] of Object.entries(env)) {
    if (value !== undefined) out[key] = value;
  }
  return out;
}

/**
 * Runs `script` (relative to ROOT) on this Node with tsx, as `npm run` would,
 * with only `env` of the settings above. The working directory defaults to the
 * system's temp folder, so a developer's ./.env in the repository does not
 * leak in. Each program is pushed onto `started`, for stopAll() in afterAll.
 */
export function runScript(
  script: string,
  options: {
    args?: string[];
    cwd?: string;
    env?: Record<string, string | undefined>;
    uid?: number;
    gid?: number;
    /** `ulimit -n` for the program: its file descriptors, to run it out of them for real. */
    maxOpenFiles?: number;
  },
  started: Program[],
): Program {
  const env = programEnv(options.env);
  // Outside ROOT tsx would not find the project's tsconfig.
  env.TSX_TSCONFIG_PATH = path.join(ROOT, "tsconfig.json");
  const spawnOptions: SpawnOptions = { cwd: options.cwd ?? tmpdir(), env, stdio: "pipe", uid: options.uid, gid: options.gid };
  const nodeArgs = ["--import", TSX_LOADER, path.join(ROOT, script), ...(options.args ?? [])];
  // sh sets the limit, then exec: the child's pid is Node's own.
  const child = (
    options.maxOpenFiles === undefined
      ? spawn(process.execPath, nodeArgs, spawnOptions)
      : spawn(
          "/bin/sh",
          ["-c", 'ulimit -n "$1" && shift && exec "$0" "$@"', process.execPath, String(options.maxOpenFiles), ...nodeArgs],
          spawnOptions,
        )
  ) as ChildProcessWithoutNullStreams;
  const program = track(child, script, (signal) => child.kill(signal));
  started.push(program);
  return program;
}

/**
 * Runs `npm <args>` from the repository (as `npm start` must be run), in a
 * process group of its own, as a terminal or a supervisor starts it: `stop()`
 * and `signalGroup()` signal the whole group. The settings above that `env`
 * leaves out are set empty, so a developer's ./.env (which npm's working
 * directory, the repository, may hold) cannot fill them in.
 */
export function runNpm(args: string[], options: { env?: Record<string, string | undefined> }, started: GroupProgram[]): GroupProgram {
  return runGroup("npm", args, options, started);
}

/** `command` from the repository in a process group of its own, with the environment runNpm() gives. */
export function runGroup(
  command: string,
  args: string[],
  options: { env?: Record<string, string | undefined> },
  started: GroupProgram[],
): GroupProgram {
  const blanks = Object.fromEntries(SETTINGS.map((key) => [key, ""]));
  const env = programEnv({ ...blanks, ...options.env });
  const child = spawn(command, args, { cwd: ROOT, env, stdio: "pipe", detached: true }) as ChildProcessWithoutNullStreams;
  const signalGroup = (signal: NodeJS.Signals) => {
    try {
      process.kill(-child.pid!, signal);
    } catch {
      // The group is gone already.
    }
  };
  const program: GroupProgram = { ...track(child, [command, ...args].join(" "), signalGroup), signalGroup };
  started.push(program);
  return program;
}

export interface GroupProgram extends Program {
  /** Signals every process of the program's group (npm, and node under it; not the detached Postgres). */
  signalGroup(signal: NodeJS.Signals): void;
}

/** A Program over `child`: its output, its exit, waiting for a line; `kill` is how stop() signals it. */
function track(child: ChildProcessWithoutNullStreams, label: string, kill: (signal: NodeJS.Signals) => void): Program {
  let stdout = "";
  let stderr = "";
  child.stdout.setEncoding("utf8").on("data", (chunk: string) => void (stdout += chunk));
  child.stderr.setEncoding("utf8").on("data", (chunk: string) => void (stderr += chunk));
  child.stdin.end();
  const exited = new Promise<Exit>((resolve) => child.once("close", (code, signal) => resolve({ code, signal })));
  let done = false;
  void exited.then(() => (done = true));
  return {
    child,
    stdout: () => stdout,
    stderr: () => stderr,
    exited,
    waitFor: (pattern, timeoutMs = 30_000) => waitForOutput({ child, label, exited, output: () => [stdout, stderr] }, pattern, timeoutMs),
    exit: (timeoutMs = 30_000) =>
      new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`${label} still running after ${timeoutMs} ms; stderr: ${stderr}`)), timeoutMs);
        void exited.then((exit) => {
          clearTimeout(timer);
          resolve(exit);
        });
      }),
    stop: async (graceMs = 15_000) => {
      if (done) return exited;
      kill("SIGTERM");
      const timer = setTimeout(() => kill("SIGKILL"), graceMs);
      const exit = await exited;
      clearTimeout(timer);
      return exit;
    },
  };
}

interface Watched {
  child: ChildProcessWithoutNullStreams;
  label: string;
  exited: Promise<Exit>;
  output: () => [string, string];
}

/** Resolves once stdout or stderr matches; fails if the program exits or `timeoutMs` passes first. */
function waitForOutput({ child, label, exited, output }: Watched, pattern: RegExp, timeoutMs: number): Promise<RegExpMatchArray> {
  return new Promise((resolve, reject) => {
    const check = () => {
      const [stdout, stderr] = output();
      const match = pattern.exec(stdout) ?? pattern.exec(stderr);
      if (!match) return false;
      cleanup();
      resolve(match);
      return true;
    };
    const onExit = () => {
      if (check()) return;
      cleanup();
      reject(new Error(`${label} exited before printing ${pattern}; stderr: ${output()[1]}`));
    };
    const timer = setTimeout(() => {
      cleanup();
      reject(new Error(`${label} did not print ${pattern} within ${timeoutMs} ms; stderr: ${output()[1]}`));
    }, timeoutMs);
    const cleanup = () => {
      clearTimeout(timer);
      child.stdout.off("data", check);
      child.stderr.off("data", check);
    };
    if (check()) return;
    child.stdout.on("data", check);
    child.stderr.on("data", check);
    void exited.then(onExit);
  });
}

/** Stops every program still running (gracefully first, so an embedded Postgres is shut down too). */
export async function stopAll(started: Program[]): Promise<void> {
  await Promise.all(started.map((program) => program.stop()));
}

/** The non-empty lines of a program's output. */
export function lines(text: string): string[] {
  return text.split("\n").filter((line) => line.trim() !== "");
}
