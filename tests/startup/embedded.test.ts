import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { chmod, cp, mkdir, mkdtemp, readFile, rm, rmdir, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, describe, it } from "vitest";
import { locateBinaries } from "../../src/db/embedded-binaries.js";
import { EmbeddedPostgresError } from "../../src/db/embedded-process.js";
import { postgresSystemUser, reachableBinaries, reachableDataDir, SHARED_DIR } from "../../src/db/embedded-root.js";
import { runScript, stopAll, type Program } from "../helpers/process.js";

const isRoot = process.getuid?.() === 0;

/** `npm start` with no DATABASE_URL: the embedded Postgres, in `cwd`'s own ./.data/postgres. */
function startServer(cwd: string, started: Program[]): Program {
  return runScript("src/main.ts", { cwd, env: { PORT: "0", LOG_LEVEL: "info" } }, started);
}

describe("the embedded database at start-up", () => {
  const started: Program[] = [];
  const cleanup: string[] = [];

  async function tempDir(mode: number): Promise<string> {
    const dir = await mkdtemp(path.join(tmpdir(), "todo-startup-"));
    await chmod(dir, mode);
    cleanup.push(dir);
    return dir;
  }

  afterAll(async () => {
    await stopAll(started);
    for (const dir of cleanup) await rm(dir, { recursive: true, force: true });
    // The shared folder itself stays if anything else is in it.
    if (isRoot) await rmdir(SHARED_DIR).catch(() => {});
  });

  it.concurrent(
    "should refuse a second server on the same data folder, naming the process that holds it, and stop the first cleanly",
    async ({ expect }) => {
      // Open to others, so that as root the postgres system user can use it where it is.
      const cwd = await tempDir(0o755);
      const first = startServer(cwd, started);
      const [, url] = await first.waitFor(/GraphQL API ready at (http:\/\/\S+)\/graphql"/, 60_000);
      const lockFile = path.join(cwd, ".data", "postgres", "postmaster.pid");
      const pid = (await readFile(lockFile, "utf8")).split("\n")[0];

      const second = startServer(cwd, started);
      expect(await second.exit()).toEqual({ code: 1, signal: null });
      expect(second.stderr()).toBe(
        `The embedded database in ./.data/postgres is in use by another process (pid ${pid}); stop it or set DATABASE_URL\n`,
      );
      expect(second.stdout()).toBe("");

      // The first one never noticed.
      expect((await fetch(`${url}/health`)).status).toBe(200);
      expect(await first.stop()).toEqual({ code: 0, signal: null });
      // Its Postgres shut down with it, releasing the folder.
      expect(existsSync(lockFile)).toBe(false);
    },
  );

  // As root, Postgres runs as the postgres system user, which must reach the binaries and the data.
  it.runIf(isRoot).concurrent(
    "should, as root, keep a new cluster where that user can reach it when the project folder is closed to it, and say so",
    async ({ expect }) => {
      const cwd = await tempDir(0o700);
      const server = startServer(cwd, started);
      const [, relocated] = await server.waitFor(/keeps its data in (\/\S+) instead/, 60_000);
      cleanup.push(path.dirname(relocated as string));
      const [, url] = await server.waitFor(/GraphQL API ready at (http:\/\/\S+)"/, 60_000);
      const [, token] = await server.waitFor(/Authorization: Bearer (\S+)/);

      const response = await fetch(url as string, {
        method: "POST",
        headers: { "content-type": "application/json", authorization: `Bearer ${token}` },
        body: JSON.stringify({ query: 'mutation { addTask(input: { title: "Stored where postgres can reach" }) { title } }' }),
      });
      expect(await response.json()).toEqual({ data: { addTask: { title: "Stored where postgres can reach" } } });
      expect(existsSync(path.join(relocated as string, "PG_VERSION"))).toBe(true);
      expect(server.stderr()).toBe("");
      expect(await server.stop()).toEqual({ code: 0, signal: null });
    },
  );

  it.runIf(isRoot).concurrent(
    "should, as root, run a copy of the binaries when that user cannot reach node_modules, and say so",
    async ({ expect }) => {
      const user = await postgresSystemUser();
      const real = await locateBinaries();
      const notices: string[] = [];
      expect(await reachableBinaries(real, user, await tempDir(0o755), (message) => notices.push(message))).toEqual(real);
      expect(notices).toEqual([]);

      // The same build inside a folder closed to other users, as node_modules under /root would be.
      const hidden = path.join(await tempDir(0o700), "native");
      await cp(real.nativeDir, hidden, { recursive: true, verbatimSymlinks: true });
      const unreachable = {
        ...real,
        nativeDir: hidden,
        initdb: path.join(hidden, path.relative(real.nativeDir, real.initdb)),
        postgres: path.join(hidden, path.relative(real.nativeDir, real.postgres)),
      };
      const shared = await tempDir(0o755);
      const copy = await reachableBinaries(unreachable, user, shared, (message) => notices.push(message));
      const target = path.join(shared, `postgres-${real.build}`);
      expect(copy).toEqual({
        ...unreachable,
        nativeDir: target,
        initdb: path.join(target, "bin", "initdb"),
        postgres: path.join(target, "bin", "postgres"),
      });
      expect(notices).toEqual([`The postgres system user cannot reach the embedded Postgres in node_modules; running its copy in ${target}`]);
      for (const binary of [copy.postgres, copy.initdb]) {
        const run = spawnSync(binary, ["--version"], { ...user, encoding: "utf8" });
        expect(run.status).toBe(0);
        expect(run.stdout).toMatch(/\(PostgreSQL\) \d+/);
      }

      // The next start reuses the copy.
      const copiedAt = (await stat(copy.postgres)).mtimeMs;
      expect(await reachableBinaries(unreachable, user, shared, () => {})).toEqual(copy);
      expect((await stat(copy.postgres)).mtimeMs).toBe(copiedAt);
    },
  );

  it.runIf(isRoot).concurrent(
    "should, as root, refuse in one clear line an existing cluster that user cannot reach, instead of moving it",
    async ({ expect }) => {
      const user = await postgresSystemUser();
      const dataDir = path.join(await tempDir(0o700), "postgres");
      await mkdir(dataDir);
      await writeFile(path.join(dataDir, "PG_VERSION"), "18\n");
      const shared = await tempDir(0o755);
      const attempt = reachableDataDir(dataDir, user, shared, () => {}, "./.data/postgres");
      await expect(attempt).rejects.toThrow(EmbeddedPostgresError);
      await expect(attempt).rejects.toThrow(
        "The embedded database in ./.data/postgres cannot be reached by the postgres system user that Postgres runs as under root " +
          "(a folder on its path is closed to other users); open that folder to others (chmod o+x), run as another user, or set DATABASE_URL",
      );
    },
  );
});
