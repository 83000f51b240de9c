import { describe, expect, it } from "vitest";
import { importCycles, LAYERS, layerOf, longFunctions, rootFiles, sourceFiles, unplacedFolders, upwardImports } from "../../scripts/code-shape.js";

// The limits of issue 21 ("one shape for the codebase"), held here so they cannot creep back.
describe("the shape of src/", () => {
  const server = sourceFiles("src");

  it("should keep at most three files at src/ root", () => {
    expect(rootFiles().length).toBeLessThanOrEqual(3);
  });

  it("should give every src/ folder a place in the layer order", () => {
    expect(unplacedFolders()).toEqual([]);
    expect(LAYERS.length).toBeGreaterThan(0);
  });

  it("should have no import cycle", () => {
    expect(importCycles(server)).toEqual([]);
  });

  it("should never import from a layer above (domain/ and db/ never import chat/, realtime/, schema/ or server/)", () => {
    expect(upwardImports(server)).toEqual([]);
  });

  it("should have no function over 60 lines in src/ and web/src/", () => {
    expect(longFunctions([...sourceFiles("src"), ...sourceFiles("web/src")], 60)).toEqual([]);
  });
});

describe("the shape checker itself", () => {
  it("should find a cycle between two files that import each other", () => {
    const files = sourceFiles("tests/scripts/fixtures/cycle");
    expect(importCycles(files)).toEqual([["tests/scripts/fixtures/cycle/a.ts", "tests/scripts/fixtures/cycle/b.ts"]]);
  });

  it("should place domain/ below schema/ and lib/ at the bottom", () => {
    const domain = layerOf("src/domain/tasks.ts") as number;
    expect(domain).toBeGreaterThan(layerOf("src/schema/task.ts") as number);
    expect(layerOf("src/lib/ids.ts")).toBe(LAYERS.length - 1);
    expect(layerOf("src/main.ts")).toBeUndefined();
  });
});
