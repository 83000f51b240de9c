import { rm } from "node:fs/promises";
import { setTimeout as sleep } from "node:timers/promises";
import { afterAll, beforeAll, describe, it } from "vitest";
import { RELAYED_SIGNAL_MS } from "../../src/boot/signals.js";
import { TOOL_NAMES } from "../mcp/support.js";
import { databaseUrl, newUserId, testDb } from "../helpers/db.js";
import { ensureBuilt, runNpm, stopAll, type GroupProgram } from "../helpers/process.js";
import { processTree } from "../helpers/process-tree.js";
import { TEST_JWT_SECRET, tokenFor } from "../helpers/tokens.js";
import {
  devToken,
  drained,
  embeddedTemplate,
  errorLines,
  gatedCohere,
  holdBoot,
  inFlight,
  nothingLeft,
  openTempDir,
  REPLY,
  served,
  serverEnv,
  type GatedCohere,
  type Served,
} from "./signals-support.js";

/**
 * `npm start` as a newcomer runs it (from the repository, in a process group of its own, as
 * a terminal or a supervisor starts it), signalled while a sendMessage turn is streaming and
 * a graphql-ws subscriber is open: by the whole group (Ctrl-C, `kill -- -PGID`), by npm
 * alone, or by the server alone. Every round must: close the socket with 1001, deliver the
 * turn's whole reply (its model answers during the drain, and it persists before the
 * embedded Postgres stops), exit 0 (npm passes on the server's code), and leave no process
 * behind: npm, node, the postmaster and its backends, the watchdog.
 */

type Kind = "embedded" | "external";
type Target = "group" | "npm" | "server";

const ROUNDS: { kind: Kind; target: Target; signal: NodeJS.Signals }[] = [
  ...(["embedded", "external"] as const).flatMap((kind) => [
    { kind, target: "group" as const, signal: "SIGTERM" as const },
    { kind, target: "group" as const, signal: "SIGINT" as const },
    { kind, target: "group" as const, signal: "SIGTERM" as const },
    { kind, target: "group" as const, signal: "SIGINT" as const },
    { kind, target: "group" as const, signal: "SIGTERM" as const },
    { kind, target: "npm" as const, signal: "SIGTERM" as const },
    { kind, target: "server" as const, signal: "SIGINT" as const },
  ]),
];

describe("npm start under SIGTERM and SIGINT", () => {
  const started: GroupProgram[] = [];
  let cohere: GatedCohere;
  let base: string;
  let copyCluster: () => Promise<string>;

  beforeAll(async () => {
    // Built once before the rounds start together (each `npm start` then finds dist/ current).
    await ensureBuilt();
    cohere = await gatedCohere();
    base = await openTempDir("todo-signals-");
    copyCluster = await embeddedTemplate(base);
  }, 120_000);

  afterAll(async () => {
    await stopAll(started);
    await cohere?.close();
    if (base) await rm(base, { recursive: true, force: true });
  });

  /** `npm start` on an embedded cluster of its own, or on the run's database; with the token to call it. */
  async function start(kind: Kind): Promise<{ served: Served; token: string; userId?: string }> {
    if (kind === "embedded") {
      const program = runNpm(["start"], { env: serverEnv(cohere, { EMBEDDED_DATA_DIR: await copyCluster() }) }, started);
      const server = await served(program);
      return { served: server, token: await devToken(program) };
    }
    const env = serverEnv(cohere, { DATABASE_URL: databaseUrl(), AUTH_JWT_SECRET: TEST_JWT_SECRET, CHAT_RATE_LIMIT: "0" });
    const userId = newUserId("signals");
    return { served: await served(runNpm(["start"], { env }, started)), token: await tokenFor(userId), userId };
  }

  function deliver({ program, server }: Served, target: Target, signal: NodeJS.Signals): void {
    if (target === "group") program.signalGroup(signal);
    else process.kill(target === "npm" ? program.child.pid! : server.pid, signal);
  }

  it.concurrent.for(ROUNDS.map((round, index) => ({ ...round, index })))(
    "should drain and exit 0 leaving nothing behind: $kind database, $signal to the $target (round $index)",
    { timeout: 90_000 },
    async ({ kind, target, signal }, { expect }) => {
      const { served: server, token, userId } = await start(kind);
      if (kind === "embedded") expect(server.tree.some((entry) => entry.command.includes("bin/postgres"))).toBe(true);
      const work = await inFlight(server, token, cohere);

      const signalledAt = performance.now();
      deliver(server, target, signal);
      const { closeCode, answer } = await drained(work);
      expect(closeCode).toBe(1001);
      expect(answer.status).toBe(200);
      expect(answer.body.errors).toBeUndefined();
      expect(answer.body.data?.sendMessage.reply).toMatchObject({ content: REPLY, status: "COMPLETE" });
      expect(answer.body.data?.sendMessage.turn.status).toBe("COMPLETED");

      expect(await server.program.exit(30_000)).toEqual({ code: 0, signal: null });
      const exitMs = performance.now() - signalledAt;
      await nothingLeft(server.tree);
      expect(errorLines(server.program)).toEqual([]);
      if (process.env.FAULT_FIGURES) {
        console.log(
          `npm-start-signals ${JSON.stringify({ kind, target, signal, processes: server.tree.length, closeCode, exitMs: Math.round(exitMs) })}`,
        );
      }
      expect(server.program.stdout()).toContain('"drained":true');
      if (userId !== undefined) {
        const db = testDb();
        const reply = await db.message.findFirst({ where: { userId, role: "assistant", content: REPLY } }).finally(() => db.$disconnect());
        expect(reply?.status).toBe("COMPLETE");
      }
    },
  );

  it.concurrent(
    "should serve MCP from the build, its SDK loaded by the first /mcp request",
    async ({ expect }) => {
      const { served: server, token } = await start("external");
      const response = await fetch(server.url.replace(/\/graphql$/, "/mcp"), {
        method: "POST",
        headers: { "content-type": "application/json", accept: "application/json, text/event-stream", authorization: `Bearer ${token}` },
        body: JSON.stringify({ jsonrpc: "2.0", id: 1, method: "tools/list" }),
      });
      expect(response.status).toBe(200);
      const body = (await response.json()) as { result: { tools: { name: string }[] } };
      expect(body.result.tools.map((tool) => tool.name).sort()).toEqual([...TOOL_NAMES].sort());
      expect(await server.program.stop()).toEqual({ code: 0, signal: null });
    },
    90_000,
  );

  it.concurrent(
    "should exit 1 at once on a second signal, and still stop the embedded Postgres",
    async ({ expect }) => {
      const { served: server, token } = await start("embedded");
      const work = await inFlight(server, token, cohere);
      server.program.signalGroup("SIGTERM");
      expect((await work.subscriber.closed).code).toBe(1001);
      // The model is still held: the server is draining. Only a signal past the relay window counts as a
      // second one: the window runs from when the server took the first, which its log line tells.
      const [drainLine] = await server.program.waitFor(/^\{.*"msg":"shutting down: draining".*$/m, 10_000);
      const firstTakenAt = (JSON.parse(drainLine) as { time: number }).time;
      await sleep(Math.max(0, firstTakenAt + RELAYED_SIGNAL_MS + 1 - Date.now()));
      server.program.signalGroup("SIGTERM");
      expect(await server.program.exit(10_000)).toEqual({ code: 1, signal: null });
      expect(server.program.stdout()).toContain("second signal: exiting now");
      await nothingLeft(server.tree);
      work.release();
    },
    90_000,
  );

  it.concurrent(
    "should still stop the embedded Postgres when the server is killed outright (SIGKILL)",
    async ({ expect }) => {
      const { served: server } = await start("embedded");
      const postmaster = server.tree.find((entry) => entry.ppid === server.server.pid && entry.command.includes("bin/postgres"));
      expect(postmaster).toBeDefined();
      // No handler and no exit hook runs: only the watchdog, whose pipe from the server closes, is left to stop it.
      process.kill(server.server.pid, "SIGKILL");
      await server.program.exit(10_000);
      await nothingLeft(server.tree);
    },
    90_000,
  );

  it.concurrent(
    "should stop cleanly when signalled while it starts",
    async ({ expect }) => {
      const dataDir = await copyCluster();
      // The postmaster's boot waits for the test: the signal surely comes while the server starts.
      const hold = await holdBoot(dataDir);
      const program = runNpm(["start"], { env: serverEnv(cohere, { EMBEDDED_DATA_DIR: dataDir }) }, started);
      await hold.reached();
      const tree = processTree(program.child.pid!);
      expect(tree.some((entry) => entry.command.includes("bin/postgres"))).toBe(true);
      program.signalGroup("SIGTERM");
      await program.waitFor(/signal during start-up/, 30_000);
      hold.release();
      expect(await program.exit(30_000)).toEqual({ code: 0, signal: null });
      // It stopped once the database step was done: it never served.
      expect(program.stdout()).not.toContain("GraphQL API ready");
      expect(errorLines(program)).toEqual([]);
      await nothingLeft(tree);
    },
    90_000,
  );
});
