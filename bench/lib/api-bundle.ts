/**
 * bench/api-server.ts bundled as production bundles src/main.ts (scripts/build.mjs's own
 * esbuild options), so the soak runs the API under plain `node` as `npm start` runs
 * dist/main.js: no tsx loader, no source-map support, the same chunks loaded lazily. The
 * bundle goes in a folder of this process's own under the project (the server finds the
 * project root, prisma/ and package.json, by walking up from its chunks), built once per
 * process and removed when the process exits.
 */
import { rmSync } from "node:fs";
import { mkdtemp, mkdir } from "node:fs/promises";
import path from "node:path";
import { build } from "esbuild";
import { bundleOptions } from "../../scripts/build.mjs";
import { ROOT } from "./program.js";

/** Ignored by git (.gitignore). */
const BUNDLES_DIR = path.join(ROOT, ".bench-dist");

let bundled: Promise<string> | undefined;

/** The bundled bench/api-server.js: its absolute path. */
export function apiServerBundle(): Promise<string> {
  bundled ??= bundle();
  return bundled;
}

async function bundle(): Promise<string> {
  await mkdir(BUNDLES_DIR, { recursive: true });
  const outdir = await mkdtemp(path.join(BUNDLES_DIR, "api-server-"));
  process.once("exit", () => rmSync(outdir, { recursive: true, force: true }));
  await build(bundleOptions({ entryPoints: [path.join(ROOT, "bench", "api-server.ts")], outdir, outbase: ROOT }));
  return path.join(outdir, "bench", "api-server.js");
}
