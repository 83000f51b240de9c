import { execFile } from "node:child_process";
import { randomUUID } from "node:crypto";
import { chownSync, closeSync, constants, openSync, renameSync, writeFileSync, writeSync } from "node:fs";
import { appendFile, chmod, chown, mkdtemp, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { expect, vi } from "vitest";
import { startEmbeddedPostgres } from "../../src/db/embedded.js";
import { applyMigrations } from "../../src/db/migrate.js";
import { MIGRATIONS_DIR } from "../../src/db/open.js";
import { deferred, SEND_LIVE, type LivePayload } from "../chat/support.js";
import { startFakeCohere, textReply, type FakeCohere, type RecordedRequest } from "../helpers/fake-cohere.js";
import { lines, type GroupProgram } from "../helpers/process.js";
import { inGroups, processTree, stillAlive, type ProcessEntry } from "../helpers/process-tree.js";
import { wsClient, type TestWsClient } from "../helpers/ws-client.js";
import { ADD_TASK, TASK_CHANGED, within } from "../realtime/support.js";

// Shared by the tests that signal a real server process: a fake Cohere whose answers wait
// for the test, a migrated embedded cluster to copy, and one "drain round".

const run = promisify(execFile);

export const REPLY = "The answer that arrived while the server drained.";

export interface GatedCohere {
  fake: FakeCohere;
  /** The answer to a message with this content stops after its first delta until released. */
  hold(content: string): () => void;
  /** Whether the model is streaming its answer to that message (the turn is in flight). */
  streaming(content: string): boolean;
  close(): Promise<void>;
}

function lastContent(request: RecordedRequest): unknown {
  return request.body.messages.at(-1)?.content;
}

export async function gatedCohere(): Promise<GatedCohere> {
  const fake = await startFakeCohere();
  const gates = new Map<string, ReturnType<typeof deferred>>();
  fake.setFallback((request) => {
    const content = lastContent(request);
    const gate = typeof content === "string" ? gates.get(content) : undefined;
    return textReply(REPLY, gate ? { gate: { afterDeltas: 1, until: gate.promise } } : {});
  });
  return {
    fake,
    hold: (content) => {
      const gate = deferred();
      gates.set(content, gate);
      return gate.resolve;
    },
    streaming: (content) =>
      fake.requests.some((request) => lastContent(request) === content && request.sent.some((event) => event.type === "content-delta")),
    close: async () => {
      for (const gate of gates.values()) gate.resolve();
      await fake.close();
    },
  };
}

/** A temp folder Postgres can use as root too (it runs as the postgres user, which must enter it). */
export async function openTempDir(prefix: string): Promise<string> {
  const dir = await mkdtemp(path.join(tmpdir(), prefix));
  await chmod(dir, 0o755);
  return dir;
}

/**
 * An initialised, migrated embedded cluster in `${base}/template` (postgres/ and its
 * postgres.password), so each round copies it instead of paying for initdb.
 */
export async function embeddedTemplate(base: string): Promise<() => Promise<string>> {
  const template = path.join(base, "template");
  const embedded = await startEmbeddedPostgres({ dataDir: path.join(template, "postgres") });
  try {
    await applyMigrations({ url: embedded.url, migrationsDir: MIGRATIONS_DIR });
  } finally {
    await embedded.stop();
  }
  return async () => {
    const copy = path.join(base, `round-${randomUUID()}`);
    // -a: as root the cluster belongs to the postgres user, and must stay so.
    await run("cp", ["-a", template, copy]);
    return path.join(copy, "postgres");
  };
}

export interface HeldBoot {
  /** Resolves once the postmaster is blocked reading its configuration: the server is then starting, and stays so. */
  reached(): Promise<void>;
  /** Lets the postmaster read on (and boot). */
  release(): void;
}

/**
 * Holds the boot of the cluster in `dataDir` at a point the test sees: its postgresql.conf
 * includes a named pipe, which the postmaster cannot finish reading until release() writes to
 * it. Whatever the load, a signal sent once reached() resolves comes while the server starts.
 */
export async function holdBoot(dataDir: string): Promise<HeldBoot> {
  const fifo = path.join(dataDir, "start-hold.conf");
  await run("mkfifo", ["-m", "600", fifo]);
  // Read by the user the postmaster runs as (the postgres user, when the tests run as root).
  const owner = await stat(dataDir);
  await chown(fifo, owner.uid, owner.gid);
  await appendFile(path.join(dataDir, "postgresql.conf"), "\ninclude 'start-hold.conf'\n");
  let writer: number | undefined;
  return {
    reached: () =>
      vi.waitFor(
        () => {
          // Without a reader, a non-blocking open for writing fails (ENXIO): the postmaster has not got there yet.
          writer = openSync(fifo, constants.O_WRONLY | constants.O_NONBLOCK);
        },
        { timeout: 60_000, interval: 20 },
      ),
    release: () => {
      if (writer === undefined) return;
      // Postgres reads its configuration twice as it starts: a plain file takes the pipe's place
      // (renamed over it, so no reader ever finds neither), then the reader held on the pipe gets its end.
      writeFileSync(`${fifo}.plain`, "# released by the test\n");
      chownSync(`${fifo}.plain`, owner.uid, owner.gid);
      renameSync(`${fifo}.plain`, fifo);
      writeSync(writer, "# released by the test\n");
      closeSync(writer);
      writer = undefined;
    },
  };
}

/** The server's settings for a round: the fake model, no web client (its build is not what is tested here). */
export function serverEnv(cohere: GatedCohere, env: Record<string, string>): Record<string, string> {
  return { PORT: "0", LOG_LEVEL: "info", WEB_UI: "false", COHERE_API_KEY: "test-key", COHERE_BASE_URL: cohere.fake.baseUrl, ...env };
}

export interface Served {
  program: GroupProgram;
  url: string;
  /** The program and every process below it once it serves (npm, node, the postmaster and its backends, the watchdog). */
  tree: ProcessEntry[];
  /** The server's own process (node dist/main.js). */
  server: ProcessEntry;
}

/** Waits until the program serves, then takes its process tree. */
export async function served(program: GroupProgram): Promise<Served> {
  const [, url] = await program.waitFor(/GraphQL API ready at (http:\/\/\S+\/graphql)"/, 60_000);
  const tree = processTree(program.child.pid!);
  const server = tree.find((entry) => path.basename(entry.command.split(" ")[0]!) === "node" && entry.command.includes("dist/main.js"));
  if (!server) throw new Error(`no server process under ${program.child.pid}: ${tree.map((entry) => entry.command).join(" | ")}`);
  return { program, url: url!, tree, server };
}

/** The dev token a server without auth settings prints (just after it says it is ready). */
export async function devToken(program: GroupProgram): Promise<string> {
  const [, token] = await program.waitFor(/Authorization: Bearer (\S+)/, 10_000);
  return token!;
}

async function gql<T>(url: string, token: string, query: string, variables?: Record<string, unknown>) {
  const response = await fetch(url, {
    method: "POST",
    headers: { "content-type": "application/json", authorization: `Bearer ${token}` },
    body: JSON.stringify({ query, variables }),
  });
  return { status: response.status, body: (await response.json()) as { data?: T; errors?: { message: string; extensions?: unknown }[] } };
}

/** A graphql-ws client subscribed to taskChanged, shown live by a task it saw. */
export async function liveSubscriber(url: string, token: string): Promise<TestWsClient> {
  const client = wsClient(url.replace(/^http/, "ws"), token);
  const subscription = client.subscribe(TASK_CHANGED);
  await vi.waitFor(
    async () => {
      await gql(url, token, ADD_TASK, { title: "seen by the subscriber" });
      expect(subscription.pending().length, "events the subscriber has seen").toBeGreaterThan(0);
    },
    { timeout: 20_000, interval: 100 },
  );
  return client;
}

export interface InFlight {
  subscriber: TestWsClient;
  /** The sendMessage request, answered once the turn ends. */
  answer: Promise<{ status: number; body: { data?: { sendMessage: LivePayload }; errors?: unknown[] } }>;
  release: () => void;
  content: string;
}

/** An open subscription and a sendMessage whose model answer is streaming and held: what a signal must let finish. */
export async function inFlight(served: Served, token: string, cohere: GatedCohere): Promise<InFlight> {
  const subscriber = await liveSubscriber(served.url, token);
  const content = `in flight at the signal ${randomUUID()}`;
  const release = cohere.hold(content);
  const answer = gql<{ sendMessage: LivePayload }>(served.url, token, SEND_LIVE, { input: { content } });
  answer.catch(() => {});
  await vi.waitFor(() => expect(cohere.streaming(content), "the turn's answer streaming").toBe(true), { timeout: 20_000, interval: 20 });
  return { subscriber, answer, release, content };
}

/** Waits until none of `tree` is alive and no live process is left in any of its process groups. */
export async function nothingLeft(tree: readonly ProcessEntry[]): Promise<void> {
  const groups = [...new Set(tree.map((entry) => entry.pgid))];
  await vi.waitFor(
    () => {
      expect(stillAlive(tree), "processes of the tree still alive").toEqual([]);
      expect(inGroups(groups), "live processes in its process groups").toEqual([]);
    },
    { timeout: 10_000, interval: 20 },
  );
}

/** After the signal: 1001 to the subscriber, then (the model answering during the drain) the whole reply. */
export async function drained(work: InFlight): Promise<{ closeCode: number; answer: Awaited<InFlight["answer"]> }> {
  const close = await within(work.subscriber.closed, 15_000, "the WebSocket close");
  work.release();
  const answer = await within(work.answer, 15_000, "the sendMessage answer");
  return { closeCode: close.code, answer };
}

/** The program's JSON log lines at error level or above. */
export function errorLines(program: GroupProgram): string[] {
  return lines(program.stdout())
    .filter((line) => line.startsWith("{"))
    .filter((line) => (JSON.parse(line) as { level: number }).level >= 50);
}
