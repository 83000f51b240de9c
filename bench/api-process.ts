/**
 * The parent's handle on bench/api-server.ts: the API in a child process, so
 * its memory is its own, with its settings as environment variables (the
 * same names as `npm start`'s). Used by the fan-out bench and the soak.
 */
import { fork, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath } from "node:url";
import type { FromServer, ServerStats, ToServer } from "./api-server.js";
import { apiServerBundle } from "./lib/api-bundle.js";
import { START_NODE_FLAGS } from "./lib/program.js";

export type { ServerStats } from "./api-server.js";

export interface ApiProcessOptions {
  /** DATABASE_URL, AUTH_JWT_SECRET, COHERE_*, … as for `npm start`; NODE_ENV defaults to production. */
  env: Record<string, string>;
  /** Its stdout and stderr: inherited (default) or handed to this callback, line by line. */
  onLog?: (line: string) => void;
  /**
   * "bundle": bench/api-server.ts bundled as dist/main.js is and run by plain `node`, as in
   * production (bench/lib/api-bundle.ts). "tsx" (default, what the other benches were measured
   * with): the TypeScript under tsx's loader, which also turns Node's source-map support on.
   */
  runtime?: "bundle" | "tsx";
}

/** How the process ended when nobody asked it to stop, with the last lines it wrote that were not JSON logs (a crash's stack). */
export interface ApiExit {
  /** performance.now() when it exited. */
  at: number;
  code: number | null;
  signal: string | null;
  tail: string[];
}

export class ApiProcess {
  private nextId = 0;
  private readonly waiting = new Map<number, { resolve: (reply: never) => void; reject: (error: Error) => void }>();
  private stopping = false;
  /** Set when the process ended without stop(). */
  unexpectedExit: ApiExit | undefined;

  private constructor(
    private readonly child: ChildProcess,
    readonly port: number,
    readonly pid: number,
    /** Its Node, flags and entry point, and whether source maps are on (bench/api-server.ts says). */
    readonly runtimeDescription: string,
    tail: readonly string[],
  ) {
    child.on("message", (message: FromServer) => {
      if (message.type === "ready") return;
      const { type: _type, id, ...reply } = message;
      (this.waiting.get(id)?.resolve as ((value: unknown) => void) | undefined)?.(message.type === "snapshot" ? message.file : reply);
      this.waiting.delete(id);
    });
    // A send to a process that has just died fails here, not as an uncaught 'error' event.
    child.on("error", () => {});
    child.once("exit", (code, signal) => {
      if (!this.stopping) this.unexpectedExit = { at: performance.now(), code, signal, tail: [...tail] };
      for (const waiter of this.waiting.values()) waiter.reject(new Error("the API process has exited"));
      this.waiting.clear();
    });
  }

  static async start(options: ApiProcessOptions): Promise<ApiProcess> {
    // The last lines it wrote that were not JSON log lines: what a crash prints.
    const tail: string[] = [];
    const given = options.onLog;
    const onLog =
      given === undefined
        ? undefined
        : (line: string) => {
            if (!line.startsWith("{")) tail.splice(0, Math.max(0, tail.push(line) - 40));
            given(line);
          };
    const bundled = options.runtime === "bundle";
    const child = fork(bundled ? await apiServerBundle() : fileURLToPath(new URL("./api-server.ts", import.meta.url)), {
      execArgv: bundled ? ["--expose-gc", ...START_NODE_FLAGS] : ["--expose-gc", ...START_NODE_FLAGS, "--import", "tsx"],
      env: { ...process.env, NODE_ENV: "production", LOG_LEVEL: "silent", ...options.env },
      stdio: ["ignore", onLog ? "pipe" : "inherit", onLog ? "pipe" : "inherit", "ipc"],
    });
    if (onLog) {
      for (const stream of [child.stdout, child.stderr]) {
        let rest = "";
        stream?.setEncoding("utf8");
        stream?.on("data", (chunk: string) => {
          const lines = (rest + chunk).split("\n");
          rest = lines.pop() ?? "";
          for (const line of lines) if (line.trim() !== "") onLog(line);
        });
      }
    }
    const exited = new Promise<never>((_, reject) => {
      child.once("exit", (code) => reject(new Error(`the API process exited with code ${String(code)} before it was ready`)));
    });
    exited.catch(() => {}); // An exit after start is the caller's business (see running), not a rejection.
    const [ready] = (await Promise.race([once(child, "message"), exited])) as [FromServer];
    if (ready.type !== "ready") throw new Error("the API process did not start");
    return new ApiProcess(child, ready.port, ready.pid, ready.runtime, tail);
  }

  /** With `gc`, after a full garbage collection (for memory figures; slow with many sockets). */
  stats(gc = false): Promise<ServerStats> {
    return this.ask<ServerStats>((id) => ({ type: "stats", id, gc }));
  }

  /** A heap snapshot after a full GC, written to `file` (the process stands still meanwhile); resolves with its path. */
  heapSnapshot(file: string): Promise<string> {
    return this.ask<string>((id) => ({ type: "snapshot", id, file }));
  }

  private ask<T>(message: (id: number) => ToServer): Promise<T> {
    if (!this.running) return Promise.reject(new Error("the API process has exited"));
    this.nextId += 1;
    const id = this.nextId;
    const reply = new Promise<T>((resolve, reject) => this.waiting.set(id, { resolve: resolve as (reply: never) => void, reject }));
    this.child.send(message(id));
    return reply;
  }

  get running(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  async stop(): Promise<void> {
    this.stopping = true;
    if (!this.running) return;
    const exited = once(this.child, "exit");
    this.child.send({ type: "stop" } satisfies ToServer);
    await Promise.race([exited, sleep(30_000).then(() => this.child.kill("SIGKILL"))]);
  }
}
