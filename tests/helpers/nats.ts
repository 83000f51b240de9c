import { spawn, type ChildProcess } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { createServer, type AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";

/**
 * A nats-server of a test's own (JetStream on, its store in a temporary
 * directory), on a free loopback port that it keeps across stop() and
 * start(), so clients reconnect to the same address. The binary is
 * NATS_SERVER_BIN, else /usr/sbin/nats-server, else nats-server on the PATH.
 */
export interface NatsServer {
  url: string;
  port: number;
  /** Stops it (SIGTERM, then SIGKILL after 5 s) and resolves once it has exited. */
  stop(): Promise<void>;
  /** Starts it again on the same port and store; resolves once it accepts clients. */
  start(): Promise<void>;
  /** Stops it for good and removes its store. */
  dispose(): Promise<void>;
}

export function natsServerBinary(): string | undefined {
  const candidates = [process.env.NATS_SERVER_BIN, "/usr/sbin/nats-server", "/usr/bin/nats-server", "/usr/local/bin/nats-server"];
  return candidates.find((candidate): candidate is string => candidate !== undefined && existsSync(candidate));
}

export const MISSING_NATS_SERVER =
  "nats-server not found: install it (`apt-get install -y nats-server`) or set NATS_SERVER_BIN. NATS tests are skipped.";

/** Locally a missing nats-server skips the NATS tests; under CI=true it fails the run. */
export function natsServerAvailable(): boolean {
  const found = natsServerBinary() !== undefined;
  if (!found && process.env.CI === "true") throw new Error(MISSING_NATS_SERVER.replace("are skipped", "are required under CI=true"));
  if (!found) console.warn(MISSING_NATS_SERVER);
  return found;
}

export async function startNatsServer(): Promise<NatsServer> {
  const binary = natsServerBinary();
  if (!binary) throw new Error(MISSING_NATS_SERVER.replace("NATS tests are skipped.", "").trim());
  const port = await freePort();
  const storeDir = await mkdtemp(path.join(tmpdir(), "todo-nats-"));
  let child: ChildProcess | undefined;
  const start = async () => {
    child = spawn(binary, ["-a", "127.0.0.1", "-p", String(port), "-js", "-sd", storeDir], { stdio: ["ignore", "ignore", "pipe"] });
    await readyOrExit(child);
  };
  const stop = async () => {
    const running = child;
    child = undefined;
    if (!running || running.exitCode !== null) return;
    const exited = new Promise<void>((resolve) => running.once("exit", () => resolve()));
    running.kill("SIGTERM");
    const force = setTimeout(() => running.kill("SIGKILL"), 5000);
    await exited;
    clearTimeout(force);
  };
  await start();
  return {
    url: `nats://127.0.0.1:${port}`,
    port,
    stop,
    start,
    dispose: async () => {
      await stop();
      await rm(storeDir, { recursive: true, force: true });
    },
  };
}

/** Resolves once the server logs that it is ready; fails if it exits first or takes over 15 s. */
function readyOrExit(child: ChildProcess): Promise<void> {
  return new Promise((resolve, reject) => {
    let log = "";
    const timer = setTimeout(() => fail(new Error(`nats-server not ready after 15 s:\n${log}`)), 15_000);
    const onData = (chunk: Buffer) => {
      log += chunk.toString();
      if (/Server is ready/.test(log)) done();
    };
    const onExit = (code: number | null) => fail(new Error(`nats-server exited (${code}) before it was ready:\n${log}`));
    const cleanup = () => {
      clearTimeout(timer);
      child.stderr?.off("data", onData);
      child.off("exit", onExit);
      // Keep reading, or a full pipe would stall the server's logging.
      child.stderr?.resume();
    };
    const done = () => {
      cleanup();
      resolve();
    };
    const fail = (error: Error) => {
      cleanup();
      reject(error);
    };
    child.stderr?.on("data", onData);
    child.once("exit", onExit);
  });
}

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}
