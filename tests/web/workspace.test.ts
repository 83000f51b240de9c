import { readdir, readFile } from "node:fs/promises";
import { createRequire } from "node:module";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";

const ROOT = fileURLToPath(new URL("../..", import.meta.url));
const WEB = path.join(ROOT, "web");

/**
 * Build or run the server without being imported by it: esbuild bundles dist/ at install and before
 * `npm start` when it is stale (scripts/build.mjs); tsx runs the scripts and `npm run dev`.
 */
const RUNNERS = ["tsx", "esbuild"];
/** src/web-ui/build.ts runs the web workspace's Vite, resolved from web/: a dependency of web/, not of the server. */
const FROM_WEB = ["vite"];

interface Manifest {
  workspaces?: string[];
  dependencies?: Record<string, string>;
  devDependencies?: Record<string, string>;
}

async function manifest(dir: string): Promise<Manifest> {
  return JSON.parse(await readFile(path.join(dir, "package.json"), "utf8")) as Manifest;
}

async function sourceFiles(dir: string): Promise<string[]> {
  if (/\.(ts|tsx)$/.test(dir)) return [dir];
  const entries = await readdir(dir, { withFileTypes: true, recursive: true });
  return entries
    .filter((entry) => entry.isFile() && /\.(ts|tsx|mts|js|mjs)$/.test(entry.name))
    .map((entry) => path.join(entry.parentPath, entry.name));
}

/** The packages a tree's sources load (static, side-effect and dynamic imports, require and require.resolve), by package name. */
async function importedPackages(dir: string): Promise<Set<string>> {
  const packages = new Set<string>();
  // createRequire(import.meta.url).resolve("pkg/…") counts too: GraphiQL's assets are found that way.
  const pattern = /(?:\bfrom\s*|\bimport\s*\(?\s*|\brequire(?:\.resolve)?\(\s*|\)\.resolve\(\s*)["']([^"'./][^"']*)["']/g;
  for (const file of await sourceFiles(dir)) {
    for (const [, specifier] of (await readFile(file, "utf8")).matchAll(pattern)) {
      if (specifier === undefined || specifier.startsWith("node:")) continue;
      const parts = specifier.split("/");
      packages.add(specifier.startsWith("@") ? parts.slice(0, 2).join("/") : parts[0]!);
    }
  }
  return packages;
}

describe("web/ as its own npm workspace", () => {
  it("should keep the server's runtime dependencies to what src/ imports, and list every one of them", async () => {
    const root = await manifest(ROOT);
    const imported = await importedPackages(path.join(ROOT, "src"));
    for (const name of FROM_WEB) imported.delete(name);
    const runtime = Object.keys(root.dependencies ?? {}).sort();
    expect(
      runtime.filter((name) => !imported.has(name) && !RUNNERS.includes(name)),
      "runtime dependencies src/ never imports",
    ).toEqual([]);
    expect([...imported].filter((name) => !runtime.includes(name)).sort(), "packages src/ imports that are not runtime dependencies").toEqual([]);
    for (const name of ["react", "react-dom", "vite", "@vitejs/plugin-react", "urql", "@urql/exchange-graphcache", "gql.tada"]) {
      expect(runtime, name).not.toContain(name);
    }
  });

  it("should declare the web client's packages in web/package.json, resolvable from web/, with the root listing the workspace", async () => {
    const root = await manifest(ROOT);
    const web = await manifest(WEB);
    expect(root.workspaces).toEqual(["web"]);
    const declared = { ...web.dependencies, ...web.devDependencies };
    for (const name of FROM_WEB) expect(web.dependencies, name).toHaveProperty([name]);
    const imported = new Set([...(await importedPackages(path.join(WEB, "src"))), ...(await importedPackages(path.join(WEB, "vite.config.ts")))]);
    expect([...imported].filter((name) => !(name in declared)).sort(), "packages web/ imports that web/package.json does not declare").toEqual([]);
    const fromWeb = createRequire(path.join(WEB, "package.json"));
    for (const name of Object.keys(web.dependencies ?? {})) expect(() => fromWeb.resolve(name), name).not.toThrow();
  });
});
