import { execFile } from "node:child_process";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { describe, expect, it } from "vitest";

const ROOT = fileURLToPath(new URL("../..", import.meta.url));

describe("the web client's typed documents", () => {
  it("should be generated from the current schema.graphql (npm run web:types)", async () => {
    const dir = await mkdtemp(path.join(tmpdir(), "gql-tada-"));
    try {
      const output = path.join(dir, "graphql-env.d.ts");
      // gql.tada belongs to the web workspace: resolve it as web/ sees it, wherever npm placed it.
      const fromWeb = createRequire(path.join(ROOT, "web", "package.json"));
      const cli = path.join(path.dirname(fromWeb.resolve("gql.tada/package.json")), "bin", "cli.js");
      await promisify(execFile)(process.execPath, [cli, "generate", "output", "--tsconfig", "web/tsconfig.json", "--output", output], { cwd: ROOT });
      const committed = await readFile(path.join(ROOT, "web", "src", "graphql-env.d.ts"), "utf8");
      expect(await readFile(output, "utf8"), "web/src/graphql-env.d.ts is stale: run `npm run web:types`").toBe(committed);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
