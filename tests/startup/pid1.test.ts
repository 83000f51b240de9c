import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { rm } from "node:fs/promises";
import { afterAll, beforeAll, describe, it } from "vitest";
import { ensureBuilt, runGroup, stopAll, type GroupProgram } from "../helpers/process.js";
import {
  devToken,
  drained,
  embeddedTemplate,
  errorLines,
  gatedCohere,
  inFlight,
  nothingLeft,
  openTempDir,
  REPLY,
  served,
  serverEnv,
  type GatedCohere,
} from "./signals-support.js";

/** Whether this machine lets us make a PID namespace (root, or unprivileged user namespaces). */
function unshareWorks(): boolean {
  const probe = spawnSync("unshare", ["--fork", "--pid", "--mount-proc", "true"], { stdio: "ignore", timeout: 10_000 });
  return probe.error === undefined && probe.status === 0;
}

/**
 * The server as a container runs it: `node dist/main.js` as PID 1 of its own PID namespace
 * (`unshare --fork --pid --mount-proc`, what Docker does for a CMD), where a signal without a
 * handler is ignored and the namespace dies with it. `docker stop` sends SIGTERM to that PID 1
 * from outside; the drain must be the same as anywhere: 1001, the whole reply, exit 0, and the
 * embedded Postgres (inside the namespace) stopped after the turn has persisted.
 */
describe("the server as PID 1 (a container's init)", () => {
  const started: GroupProgram[] = [];
  const available = unshareWorks();
  let cohere: GatedCohere;
  let base: string;
  let copyCluster: () => Promise<string>;

  beforeAll(async () => {
    if (!available) return;
    await ensureBuilt();
    cohere = await gatedCohere();
    base = await openTempDir("todo-pid1-");
    copyCluster = await embeddedTemplate(base);
  }, 120_000);

  afterAll(async () => {
    await stopAll(started);
    await cohere?.close();
    if (base) await rm(base, { recursive: true, force: true });
  });

  it("should drain on SIGTERM to PID 1 like anywhere else, and exit 0 leaving nothing behind", async ({ expect, skip }) => {
    if (!available) skip("`unshare --fork --pid --mount-proc` is not permitted here (it needs root or user namespaces)");
    const env = serverEnv(cohere, { EMBEDDED_DATA_DIR: await copyCluster() });
    const program = runGroup("unshare", ["--fork", "--pid", "--mount-proc", process.execPath, "dist/main.js"], { env }, started);
    const server = await served(program);
    // NSpid: its pid out here, then in its own namespace.
    const nsPids = /^NSpid:\s+(.*)$/m.exec(readFileSync(`/proc/${server.server.pid}/status`, "utf8"))?.[1]?.split(/\s+/);
    expect(nsPids?.at(-1)).toBe("1");
    expect(server.tree.some((entry) => entry.command.includes("bin/postgres"))).toBe(true);
    const work = await inFlight(server, await devToken(program), cohere);

    // As `docker stop` does: to PID 1 alone, from outside its namespace.
    const signalledAt = performance.now();
    process.kill(server.server.pid, "SIGTERM");
    const { closeCode, answer } = await drained(work);
    expect(closeCode).toBe(1001);
    expect(answer.status).toBe(200);
    expect(answer.body.data?.sendMessage.reply).toMatchObject({ content: REPLY, status: "COMPLETE" });
    expect(answer.body.data?.sendMessage.turn.status).toBe("COMPLETED");

    // unshare --fork exits with its child's status.
    expect(await program.exit(30_000)).toEqual({ code: 0, signal: null });
    if (process.env.FAULT_FIGURES) {
      console.log(`pid1 ${JSON.stringify({ processes: server.tree.length, closeCode, exitMs: Math.round(performance.now() - signalledAt) })}`);
    }
    await nothingLeft(server.tree);
    expect(errorLines(program)).toEqual([]);
    expect(program.stdout()).toContain('"drained":true');
  }, 90_000);
});
