import { spawn, type ChildProcess } from "node:child_process";

/** A start-up failure of the embedded database; its message is one line saying what to do. */
export class EmbeddedPostgresError extends Error {
  override name = "EmbeddedPostgresError";
}

/** The system user Postgres runs as when this process is root (Postgres refuses to run as root). */
export interface RunAs {
  uid: number;
  gid: number;
}

export interface ProcessOptions {
  runAs: RunAs | undefined;
  onLog: (line: string) => void;
  /** The data folder as the user knows it, for messages. */
  displayDir: string;
}

export interface Postmaster {
  stop(): Promise<void>;
}

// Start-up and failures are recognised by Postgres' messages, so they must be
// English whatever the machine's locale.
function englishEnv(): NodeJS.ProcessEnv {
  return { ...process.env, LC_MESSAGES: "C" };
}
const READY = "database system is ready to accept connections";

/** Runs initdb on an empty (or missing) data folder. */
export async function initCluster(options: ProcessOptions & { initdb: string; dataDir: string; passwordFile: string }): Promise<void> {
  const args = [
    `--pgdata=${options.dataDir}`,
    "--auth=scram-sha-256",
    "--username=postgres",
    `--pwfile=${options.passwordFile}`,
    "--lc-messages=C",
    "--encoding=UTF8",
  ];
  // Its own process group, as the postmaster's: a Ctrl-C meant for the server must not leave a half-made cluster.
  const child = spawn(options.initdb, args, { ...options.runAs, env: englishEnv(), stdio: ["ignore", "pipe", "pipe"], detached: true });
  const output = collect(child, options.onLog);
  const code = await new Promise<number | null>((resolve, reject) => {
    child.on("error", (error) => reject(spawnFailure("initdb", error)));
    child.once("close", (exitCode) => resolve(exitCode));
  });
  if (code === 0) return;
  throw new EmbeddedPostgresError(
    `The embedded database could not be created in ${options.displayDir}: ${firstError(output()) ?? `initdb exited with code ${code}`}`,
  );
}

/**
 * Starts the postmaster as a child process and resolves once it accepts
 * connections. It runs in a process group of its own, so a signal sent to the
 * server's group (Ctrl-C, `kill -- -PGID`, a supervisor) does not stop it
 * under the requests still draining: the server stops it last, with stop().
 * If this process exits without stop(), the postmaster is still told to shut
 * down (the exit hook); if it is killed outright (SIGKILL, a crash of Node
 * itself), the watchdog does it, so it never outlives us holding the data folder.
 */
export function startPostmaster(options: ProcessOptions & { postgres: string; dataDir: string; port: number }): Promise<Postmaster> {
  const args = ["-D", options.dataDir, "-p", String(options.port), "-c", "listen_addresses=127.0.0.1"];
  args.push("-c", "max_connections=200", "-c", "lc_messages=C");
  const child = spawn(options.postgres, args, { ...options.runAs, env: englishEnv(), stdio: ["ignore", "pipe", "pipe"], detached: true });
  const output = collect(child, options.onLog);
  const watchdog = startWatchdog(child);
  const shutDownWithUs = () => {
    signalShutdown(child);
    watchdog?.kill("SIGKILL");
  };
  process.once("exit", shutDownWithUs);

  let running = true;
  const exited = new Promise<void>((resolve) => {
    const done = () => {
      running = false;
      process.off("exit", shutDownWithUs);
      // Its job is over: with the postmaster gone, its pid may be reused.
      watchdog?.kill("SIGKILL");
      resolve();
    };
    child.once("exit", done);
    // "on", not "once": a failed kill() emits an error too, which must not go unhandled
    // (and does not mean the postmaster is gone; a failed spawn leaves no pid).
    child.on("error", () => {
      if (child.pid === undefined) done();
    });
  });
  let stopping: Promise<void> | undefined;
  const postmaster: Postmaster = {
    stop: () =>
      (stopping ??= (async () => {
        if (running) signalShutdown(child);
        await exited;
      })()),
  };

  return new Promise((resolve, reject) => {
    let ready = false;
    child.stderr?.on("data", () => {
      if (ready || !output().includes(READY)) return;
      ready = true;
      child.once("exit", (code, signal) => {
        if (stopping === undefined) options.onLog(`postgres exited unexpectedly (code ${code}, signal ${signal})`);
      });
      resolve(postmaster);
    });
    child.once("error", (error) => reject(spawnFailure("postgres", error)));
    // "close", not "exit": by then all of its output has been read.
    child.once("close", (code) => {
      if (!ready) reject(startFailure(output(), options.displayDir, code));
    });
  });
}

/**
 * A shell that waits on a pipe from this process and, when the pipe closes
 * without a word (this process died, however: SIGKILL included), asks the
 * postmaster for a fast shutdown. The pipe's end is closed by the kernel when
 * we die, which no exit hook can promise. Its own process group too, so the
 * server's group signal does not end it early; the server kills it once the
 * postmaster has stopped. None on Windows, which has no such shell.
 */
function startWatchdog(postmaster: ChildProcess): ChildProcess | undefined {
  if (process.platform === "win32" || postmaster.pid === undefined) return undefined;
  const script = 'read -r _ignored; kill -INT "$1" 2>/dev/null';
  const watchdog = spawn("/bin/sh", ["-c", script, "postgres-watchdog", String(postmaster.pid)], {
    stdio: ["pipe", "ignore", "ignore"],
    detached: true,
  });
  // A missing shell only loses this safeguard; the exit hook still stops the postmaster.
  watchdog.on("error", () => {});
  watchdog.stdin?.on("error", () => {});
  // Neither it nor its pipe may keep the server's event loop alive.
  watchdog.unref();
  (watchdog.stdin as (NodeJS.WritableStream & { unref?: () => void }) | null)?.unref?.();
  return watchdog;
}

/** Fast shutdown: sessions are ended, the data folder is left consistent. */
function signalShutdown(child: ChildProcess): void {
  if (child.exitCode !== null || child.signalCode !== null) return;
  if (process.platform === "win32" && child.pid !== undefined) {
    // Windows has no SIGINT for other processes; end the postmaster and its backends.
    spawn("taskkill", ["/pid", String(child.pid), "/f", "/t"], { stdio: "ignore" }).on("error", () => {});
    return;
  }
  child.kill("SIGINT");
}

/** Output kept for error messages: the tail only, as the postmaster logs for as long as it runs. */
const KEPT_OUTPUT = 16_384;

/** Forwards the child's output line by line and keeps its tail for error messages. */
function collect(child: ChildProcess, onLog: (line: string) => void): () => string {
  let output = "";
  for (const stream of [child.stdout, child.stderr]) {
    stream?.setEncoding("utf8");
    stream?.on("data", (chunk: string) => {
      output = (output + chunk).slice(-KEPT_OUTPUT);
      for (const line of chunk.split("\n")) if (line.trim() !== "") onLog(line);
    });
    stream?.on("error", () => {});
  }
  return () => output;
}

function spawnFailure(program: string, error: Error): EmbeddedPostgresError {
  const code = (error as NodeJS.ErrnoException).code ?? error.message;
  return new EmbeddedPostgresError(`Cannot run the embedded Postgres' ${program} (${code}); reinstall with npm install or set DATABASE_URL`);
}

function startFailure(output: string, displayDir: string, code: number | null): EmbeddedPostgresError {
  // Postgres' own lock check: it knows a live postmaster from a stale lock file.
  const owner = /Is another postmaster \(PID (\d+)\) running/.exec(output);
  if (owner || output.includes('lock file "postmaster.pid" already exists')) {
    const pid = owner ? ` (pid ${owner[1]})` : "";
    return new EmbeddedPostgresError(`The embedded database in ${displayDir} is in use by another process${pid}; stop it or set DATABASE_URL`);
  }
  return new EmbeddedPostgresError(
    `The embedded database in ${displayDir} did not start: ${firstError(output) ?? `postgres exited with code ${code}`}`,
  );
}

/** The first FATAL/error line of Postgres' or initdb's output, without its timestamp prefix. */
function firstError(output: string): string | undefined {
  const lines = output.split("\n").map((line) => line.trim());
  const fatal = lines.map((line) => /(?:FATAL|PANIC|ERROR):\s+(.*)$/.exec(line)?.[1]).find((match) => match !== undefined);
  if (fatal) return fatal;
  return lines.find((line) => /\berror\b/i.test(line));
}
