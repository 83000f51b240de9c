import path from "node:path";
import { fileURLToPath } from "node:url";
import { build, type Metafile } from "esbuild";
import { beforeAll, describe, expect, it } from "vitest";

/**
 * What a start loads before the database is up: main.ts's static imports, the configuration
 * first. Everything there runs before the embedded postmaster is even spawned, so it is all on
 * the start's critical path (B6 in BENCHMARKS.md); graphql and the NATS client are not needed
 * until later (the API modules load while Postgres boots; NATS only under REALTIME_TRANSPORT=nats).
 * Read from esbuild's own import graph, which is what dist/ is bundled from (scripts/build.mjs).
 */

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");

let graph: Metafile["inputs"];

/** Every input reached from `entry` through static imports (import statements and require calls), dynamic imports not followed. */
function staticClosure(entry: string): string[] {
  const seen = new Set([entry]);
  const queue = [entry];
  for (let file = queue.shift(); file !== undefined; file = queue.shift()) {
    for (const imported of graph[file]?.imports ?? []) {
      if (imported.external || imported.kind === "dynamic-import" || seen.has(imported.path)) continue;
      seen.add(imported.path);
      queue.push(imported.path);
    }
  }
  return [...seen];
}

function packagesIn(files: readonly string[]): string[] {
  const names = files.map((file) => /node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(file)?.[1]).filter((name) => name !== undefined);
  return [...new Set(names)].sort();
}

describe("the modules a start loads before its database", () => {
  beforeAll(async () => {
    const result = await build({
      entryPoints: ["src/main.ts", "src/boot/start-api.ts"].map((entry) => path.join(ROOT, entry)),
      absWorkingDir: ROOT,
      outdir: path.join(ROOT, ".module-graph-unused"),
      bundle: true,
      splitting: true,
      format: "esm",
      platform: "node",
      external: ["pg-native", "bufferutil", "utf-8-validate"],
      write: false,
      metafile: true,
      logLevel: "silent",
    });
    graph = result.metafile.inputs;
  }, 60_000);

  it("should load neither graphql nor the NATS client to read the configuration", () => {
    const packages = packagesIn(staticClosure("src/boot/config.ts"));
    expect(packages.filter((name) => name === "graphql" || name.startsWith("@nats-io/") || name.startsWith("@escape.tech/"))).toEqual([]);
  });

  it("should load neither graphql nor the NATS client before main.ts starts the database", () => {
    const packages = packagesIn(staticClosure("src/main.ts"));
    expect(packages.filter((name) => name === "graphql" || name.startsWith("@nats-io/"))).toEqual([]);
  });

  it("should load the NATS client only when the nats transport starts, not with the API's modules", () => {
    const packages = packagesIn(staticClosure("src/boot/start-api.ts"));
    // The API's own modules do load graphql: the closure is the right one.
    expect(packages).toContain("graphql");
    expect(packages.filter((name) => name.startsWith("@nats-io/"))).toEqual([]);
  });
});
