import { spawn } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { mkdir, readdir, readFile, rename, rm, stat, writeFile } from "node:fs/promises";
import { createRequire } from "node:module";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { ROOT, WEB_DIR, WEB_DIST_DIR } from "./paths.js";

export { WEB_DIR, WEB_DIST_DIR } from "./paths.js";

/** Written into dist last: a dist without it (or with another hash) is rebuilt. */
const HASH_FILE = ".build-hash";
const LOCK_DIR = path.join(WEB_DIR, ".build-lock");
/** A lock older than this was left by a build that died. */
const STALE_LOCK_MS = 5 * 60_000;

/** What the bundle is made from: the client's sources, its build settings, the schema and the locked dependencies. */
const INPUTS = ["web/src", "web/index.html", "web/package.json", "web/vite.config.ts", "web/tsconfig.json", "schema.graphql", "package-lock.json"];

async function filesUnder(relative: string): Promise<string[]> {
  const absolute = path.join(ROOT, relative);
  const info = await stat(absolute).catch(() => undefined);
  if (!info) return [];
  if (!info.isDirectory()) return [relative];
  const entries = await readdir(absolute, { withFileTypes: true });
  const nested = await Promise.all(entries.map((entry) => filesUnder(path.join(relative, entry.name))));
  return nested.flat();
}

/** A hash of every input's path and bytes: the cache key of web/dist. */
export async function sourceHash(): Promise<string> {
  const hash = createHash("sha256");
  const files = (await Promise.all(INPUTS.map(filesUnder))).flat().sort();
  for (const file of files) {
    hash.update(file.split(path.sep).join("/")).update("\0");
    hash.update(await readFile(path.join(ROOT, file))).update("\0");
  }
  return hash.digest("hex");
}

async function builtHash(): Promise<string | undefined> {
  return readFile(path.join(WEB_DIST_DIR, HASH_FILE), "utf8").then(
    (text) => text.trim(),
    () => undefined,
  );
}

/** True when web/dist was built from the current sources. */
export async function webBuildIsCurrent(): Promise<boolean> {
  return (await builtHash()) === (await sourceHash());
}

/**
 * Builds web/ into web/dist unless it was built from the same sources
 * already (the hash stored next to it). Safe to call from several processes
 * at once (test workers, a start during an install): one builds under a lock
 * directory, the others wait for it, and dist is replaced by a rename, so a
 * server never serves a half-written bundle. Returns whether this call built it.
 */
export async function ensureWebBuild(log: (line: string) => void = () => {}): Promise<boolean> {
  const wanted = await sourceHash();
  if ((await builtHash()) === wanted) return false;
  return withLock(async () => {
    // Another process may have built it while this one waited for the lock.
    if ((await builtHash()) === wanted) return false;
    log("building the web client (web/ → web/dist)…");
    const temp = path.join(WEB_DIR, `.dist-${process.pid}-${randomBytes(3).toString("hex")}`);
    try {
      await runVite(temp);
      await writeFile(path.join(temp, HASH_FILE), `${wanted}\n`);
      const old = `${temp}-old`;
      await rename(WEB_DIST_DIR, old).catch(() => {});
      await rename(temp, WEB_DIST_DIR);
      await rm(old, { recursive: true, force: true });
    } finally {
      await rm(temp, { recursive: true, force: true });
    }
    log("web client built");
    return true;
  });
}

async function withLock<T>(work: () => Promise<T>): Promise<T> {
  for (;;) {
    try {
      await mkdir(LOCK_DIR);
      break;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw error;
      const info = await stat(LOCK_DIR).catch(() => undefined);
      if (info && Date.now() - info.mtimeMs > STALE_LOCK_MS) await rm(LOCK_DIR, { recursive: true, force: true });
      await sleep(200);
    }
  }
  try {
    return await work();
  } finally {
    await rm(LOCK_DIR, { recursive: true, force: true });
  }
}

/** Vite in a child process: its own module graph and memory, whatever the caller is (a server, a test worker). */
function runVite(outDir: string): Promise<void> {
  // Vite is the web workspace's dependency, not the server's: resolve it as web/ sees it.
  const require = createRequire(path.join(WEB_DIR, "package.json"));
  const viteBin = path.join(path.dirname(require.resolve("vite/package.json")), "bin", "vite.js");
  const args = [viteBin, "build", "--config", path.join(WEB_DIR, "vite.config.ts"), "--outDir", outDir, "--emptyOutDir", "--logLevel", "warn"];
  return new Promise((resolve, reject) => {
    // Vite keeps an inherited NODE_ENV (vitest sets "test"), which would bundle React's development build.
    const env = { ...process.env, NODE_ENV: "production" };
    const child = spawn(process.execPath, args, { cwd: WEB_DIR, env, stdio: ["ignore", "inherit", "inherit"] });
    child.once("error", reject);
    child.once("exit", (code, signal) => {
      if (code === 0) resolve();
      else reject(new Error(`vite build failed (${signal ?? `exit code ${code}`})`));
    });
  });
}
