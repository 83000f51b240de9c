// Builds what the server runs. dist/: the server and `npm run mcp` bundled by
// esbuild with their dependencies (dist/main.js, dist/boot/mcp-stdio.js, and
// shared and lazily loaded chunks in dist/chunks/), in src/'s layout. One file instead of some
// 1,500 halves the CPU a start spends loading modules (BENCHMARKS.md, B6).
// It only transpiles: `npm run typecheck` is the type check. Nothing happens
// when dist/ was built from the same inputs (their hash is kept in
// dist/.build-hash): src/ (with the generated Prisma client), the lockfile
// (the bundled dependencies) and this script. With --web, then web/dist too
// when the web client is on (WEB_UI, else not in production), through the
// compiled builder (the same cache as `npm run web:build`).
//
// Runs at install (postinstall, after `prisma generate` has written
// src/generated), before `npm start` (prestart, --web) and `npm run mcp`
// (premcp), and by hand (`npm run build`; `-- --force` rebuilds dist/).
// Plain JavaScript, so it needs nothing but Node and esbuild. Messages go to
// stderr: `npm run mcp`'s stdout is the MCP protocol.
import { createHash, randomBytes } from "node:crypto";
import { mkdir, readdir, readFile, rename, rm, stat, writeFile } from "node:fs/promises";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath, pathToFileURL } from "node:url";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const SRC_DIR = path.join(ROOT, "src");
export const DIST_DIR = path.join(ROOT, "dist");
const HASH_FILE = ".build-hash";
const LOCK_DIR = path.join(ROOT, ".dist-lock");
/** A lock older than this was left by a build that died. */
const STALE_LOCK_MS = 2 * 60_000;
/** Node 20.19 is the oldest Node package.json's engines accepts. */
const TARGET = "node20.19";

/** The programs dist/ holds, relative to src/; the last two are for --web below. */
const ENTRY_POINTS = ["main.ts", "boot/mcp-stdio.ts", "boot/load-env.ts", "boot/web-build.ts"];
/** Optional native helpers their packages load only if installed (try/catch): left to Node. */
const EXTERNAL = ["pg-native", "bufferutil", "utf-8-validate"];

/** Every TypeScript source under src/, generated Prisma client included, relative to ROOT. */
async function sources() {
  const entries = await readdir(SRC_DIR, { recursive: true, withFileTypes: true });
  return entries
    .filter((entry) => entry.isFile() && entry.name.endsWith(".ts") && !entry.name.endsWith(".d.ts"))
    .map((entry) => path.relative(ROOT, path.join(entry.parentPath, entry.name)))
    .sort();
}

/** What dist/ is made from: the sources' paths and bytes, the lockfile (the dependencies bundled) and this script. */
async function sourceHash(files) {
  const hash = createHash("sha256");
  for (const file of [...files, "package-lock.json", path.relative(ROOT, fileURLToPath(import.meta.url))]) {
    hash.update(file.split(path.sep).join("/")).update("\0");
    hash.update(await readFile(path.join(ROOT, file))).update("\0");
  }
  return hash.digest("hex");
}

async function builtHash() {
  return readFile(path.join(DIST_DIR, HASH_FILE), "utf8").then(
    (text) => text.trim(),
    () => undefined,
  );
}

async function withLock(work) {
  for (;;) {
    try {
      await mkdir(LOCK_DIR);
      break;
    } catch (error) {
      if (error.code !== "EEXIST") throw error;
      const info = await stat(LOCK_DIR).catch(() => undefined);
      if (info && Date.now() - info.mtimeMs > STALE_LOCK_MS) await rm(LOCK_DIR, { recursive: true, force: true });
      await sleep(50);
    }
  }
  try {
    return await work();
  } finally {
    await rm(LOCK_DIR, { recursive: true, force: true });
  }
}

/**
 * esbuild's options for the production bundle of `entryPoints` (absolute paths) into
 * `outdir`, laid out as under `outbase`. Shared with the soak (bench/lib/api-bundle.ts),
 * which bundles bench/api-server.ts exactly as dist/main.js is bundled.
 */
export function bundleOptions({ entryPoints, outdir, outbase }) {
  return {
    entryPoints,
    outdir,
    outbase,
    bundle: true,
    // Dynamic imports (the Cohere and MCP SDKs, Prisma's query compiler) stay chunks of their own, loaded on first use.
    splitting: true,
    chunkNames: "chunks/[name]-[hash]",
    format: "esm",
    platform: "node",
    target: TARGET,
    external: EXTERNAL,
    // CommonJS dependencies call require(); an ES module has none of its own.
    banner: { js: 'import { createRequire as __createRequire } from "node:module"; const require = __createRequire(import.meta.url);' },
    // Linked maps: `node --enable-source-maps dist/main.js` shows src/ lines; not loaded otherwise.
    sourcemap: "linked",
    sourcesContent: false,
    logLevel: "warning",
  };
}

/** Transpiles into a fresh folder, then swaps it in by renames, so no one ever runs a half-written dist/. */
async function compile(hash) {
  const { build } = await import("esbuild");
  const temp = path.join(ROOT, `.dist-${process.pid}-${randomBytes(3).toString("hex")}`);
  try {
    await build(bundleOptions({ entryPoints: ENTRY_POINTS.map((entry) => path.join(SRC_DIR, entry)), outdir: temp, outbase: SRC_DIR }));
    await writeFile(path.join(temp, HASH_FILE), `${hash}\n`);
    const old = `${temp}-old`;
    await rename(DIST_DIR, old).catch(() => {});
    await rename(temp, DIST_DIR);
    await rm(old, { recursive: true, force: true });
  } finally {
    await rm(temp, { recursive: true, force: true });
  }
}

/**
 * Builds dist/ unless it is current (or `force`). Safe to run from several
 * processes at once: one builds under a lock, the others wait and find it
 * current. Returns whether this call built it.
 */
export async function ensureServerBuild({ force = false, log = () => {} } = {}) {
  const files = await sources();
  const wanted = await sourceHash(files);
  if (!force && (await builtHash()) === wanted) return false;
  return withLock(async () => {
    if (!force && (await builtHash()) === wanted) return false;
    log(`bundling src/ (${files.length} files) and its dependencies into dist/…`);
    const started = performance.now();
    await compile(wanted);
    log(`dist/ built in ${Math.round(performance.now() - started)} ms`);
    return true;
  });
}

/** web/dist, when the web client is on, built by the server's own (compiled) builder. */
async function ensureWebBuildIfWanted(log) {
  // The server's .env rules (./.env, the environment wins), as it would start.
  await import(pathToFileURL(path.join(DIST_DIR, "boot", "load-env.js")).href);
  const { ensureWebBuildIfWanted } = await import(pathToFileURL(path.join(DIST_DIR, "boot", "web-build.js")).href);
  await ensureWebBuildIfWanted(log);
}

if (process.argv[1] !== undefined && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const log = (line) => process.stderr.write(`${line}\n`);
  try {
    const built = await ensureServerBuild({ force: process.argv.includes("--force"), log });
    if (!built && !process.argv.includes("--quiet")) log("dist/ is up to date");
    if (process.argv.includes("--web")) await ensureWebBuildIfWanted(log);
  } catch (error) {
    log(error instanceof Error ? error.message : String(error));
    process.exit(1);
  }
}
