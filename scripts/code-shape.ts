/**
 * Measures the shape of the code base: functions longer than a screen, import
 * cycles, imports that point up the layers, and files loose at src/ root.
 * `npm run shape` prints the report; tests/scripts/code-shape.test.ts holds
 * the limits, so they cannot creep back.
 */
import { readdirSync, readFileSync, statSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import ts from "typescript";

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");

/** Folders of src/, top to bottom: a folder may import only its own or those below it. */
export const LAYERS = ["boot", "server", "telemetry", "mcp", "schema", "chat", "realtime", "domain", "db", "auth", "lib"] as const;

export interface LongFunction {
  file: string;
  line: number;
  name: string;
  lines: number;
}

/** Every .ts/.tsx file below `dir` (relative to the repository), generated code left out. */
export function sourceFiles(dir: string): string[] {
  const absolute = path.join(ROOT, dir);
  const out: string[] = [];
  for (const entry of readdirSync(absolute)) {
    if (entry === "generated" || entry === "node_modules" || entry === "dist") continue;
    const relative = path.join(dir, entry);
    if (statSync(path.join(ROOT, relative)).isDirectory()) out.push(...sourceFiles(relative));
    else if (/\.tsx?$/.test(entry) && !entry.endsWith(".d.ts")) out.push(relative);
  }
  return out.sort();
}

/** Functions (declarations, methods, arrows, expressions) whose span, closures included, exceeds `max` lines. */
export function longFunctions(files: readonly string[], max: number): LongFunction[] {
  const found: LongFunction[] = [];
  for (const file of files) {
    const text = readFileSync(path.join(ROOT, file), "utf8");
    const kind = file.endsWith(".tsx") ? ts.ScriptKind.TSX : ts.ScriptKind.TS;
    const source = ts.createSourceFile(file, text, ts.ScriptTarget.Latest, true, kind);
    const visit = (node: ts.Node): void => {
      if (ts.isFunctionLike(node) && "body" in node && node.body !== undefined) {
        const first = source.getLineAndCharacterOfPosition(node.getStart(source)).line;
        const last = source.getLineAndCharacterOfPosition(node.getEnd()).line;
        const lines = last - first + 1;
        if (lines > max) found.push({ file, line: first + 1, name: functionName(node), lines });
      }
      ts.forEachChild(node, visit);
    };
    visit(source);
  }
  return found.sort((a, b) => b.lines - a.lines);
}

function functionName(node: ts.Node): string {
  const named = node as { name?: ts.Node };
  if (named.name !== undefined && ts.isIdentifier(named.name)) return named.name.text;
  const parent = node.parent;
  if (parent !== undefined && ts.isVariableDeclaration(parent) && ts.isIdentifier(parent.name)) return parent.name.text;
  if (parent !== undefined && ts.isPropertyAssignment(parent) && ts.isIdentifier(parent.name)) return parent.name.text;
  return "(anonymous)";
}

/** The project files a file imports (type-only imports included: they still tie the modules together). */
export function importsOf(file: string): string[] {
  const text = readFileSync(path.join(ROOT, file), "utf8");
  const targets: string[] = [];
  const pattern = /(?:^|\n)\s*(?:import|export)\s[^;]*?from\s+["'](\.{1,2}\/[^"']+)["']/g;
  for (const match of text.matchAll(pattern)) {
    const specifier = match[1] as string;
    const resolved = path.join(path.dirname(file), specifier).replace(/\.js$/, ".ts");
    targets.push(resolved);
  }
  return targets;
}

/** Each import cycle once, as the list of files around it. */
export function importCycles(files: readonly string[]): string[][] {
  const known = new Set(files);
  const graph = new Map(files.map((file) => [file, importsOf(file).filter((target) => known.has(target))]));
  const cycles: string[][] = [];
  const state = new Map<string, "open" | "done">();
  const stack: string[] = [];
  const walk = (file: string): void => {
    state.set(file, "open");
    stack.push(file);
    for (const next of graph.get(file) ?? []) {
      if (state.get(next) === "open") cycles.push(stack.slice(stack.indexOf(next)));
      else if (state.get(next) === undefined) walk(next);
    }
    stack.pop();
    state.set(file, "done");
  };
  for (const file of files) if (state.get(file) === undefined) walk(file);
  return cycles;
}

/** The layer a src/ file belongs to, or undefined for a file at src/ root or in an unlisted folder. */
export function layerOf(file: string): number | undefined {
  const parts = file.split(path.sep);
  if (parts[0] !== "src" || parts.length < 3) return undefined;
  const index = (LAYERS as readonly string[]).indexOf(parts[1] as string);
  return index === -1 ? undefined : index;
}

/** Imports from a lower layer to a higher one, as "from -> to". */
export function upwardImports(files: readonly string[]): string[] {
  const bad: string[] = [];
  for (const file of files) {
    const from = layerOf(file);
    if (from === undefined) continue;
    for (const target of importsOf(file)) {
      const to = layerOf(target);
      if (to !== undefined && to < from) bad.push(`${file} -> ${target}`);
    }
  }
  return bad;
}

/** src/ folders that are not in LAYERS (every folder must have a place in the order). */
export function unplacedFolders(): string[] {
  return readdirSync(path.join(ROOT, "src"))
    .filter((entry) => entry !== "generated" && statSync(path.join(ROOT, "src", entry)).isDirectory())
    .filter((entry) => !(LAYERS as readonly string[]).includes(entry));
}

export function rootFiles(): string[] {
  return readdirSync(path.join(ROOT, "src")).filter((entry) => statSync(path.join(ROOT, "src", entry)).isFile());
}

function report(): void {
  const files = [...sourceFiles("src"), ...sourceFiles("web/src")];
  const server = sourceFiles("src");
  const lines = files.reduce((sum, file) => sum + readFileSync(path.join(ROOT, file), "utf8").split("\n").length, 0);
  console.log(`files: ${files.length} (src/ and web/src/), lines: ${lines}`);
  console.log(`files at src/ root: ${rootFiles().length} (${rootFiles().join(", ")})`);
  console.log(`folders outside the layer order: ${unplacedFolders().join(", ") || "none"}`);
  console.log("functions over 60 lines:");
  for (const f of longFunctions(files, 60)) console.log(`  ${f.lines}\t${f.file}:${f.line} ${f.name}`);
  console.log("longest functions:");
  for (const f of longFunctions(files, 0).slice(0, 10)) console.log(`  ${f.lines}\t${f.file}:${f.line} ${f.name}`);
  console.log(
    `import cycles: ${
      importCycles(server)
        .map((cycle) => cycle.join(" -> "))
        .join("; ") || "none"
    }`,
  );
  console.log(`upward imports: ${upwardImports(server).join("; ") || "none"}`);
}

if (process.argv[1] !== undefined && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) report();
