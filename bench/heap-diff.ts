/**
 * Compares two V8 heap snapshots (.heapsnapshot, as `npm run soak --
 * --heap-snapshots DIR` writes them) by constructor: how many objects of each
 * and their self size, in the first and the second, and what grew most. What
 * a leak keeps shows up as a constructor whose count grows with the work done
 * (users, requests, sockets) rather than staying put.
 *
 *   npx tsx bench/heap-diff.ts a.heapsnapshot b.heapsnapshot [--top 30] [--json out.json]
 *   npx tsx bench/heap-diff.ts a.heapsnapshot b.heapsnapshot --retainers Name  # who holds the Name objects in b
 *   npx tsx bench/heap-diff.ts a.heapsnapshot b.heapsnapshot --path Name       # and how they are reached from the root
 *     (--ignore text, repeatable: leave out references whose name holds it, e.g. "part of key" for WeakMap entries)
 *
 * Objects are grouped the way DevTools' Summary view does: plain objects by
 * constructor name, closures as "(closure) name", strings, arrays, code and
 * system objects by kind.
 */
import { readFile, writeFile } from "node:fs/promises";
import { parseArgs } from "node:util";

interface RawSnapshot {
  snapshot: { meta: { node_fields: string[]; node_types: [string[], ...unknown[]]; edge_fields: string[]; edge_types: [string[], ...unknown[]] } };
  nodes: number[];
  edges: number[];
  strings: string[];
}

export interface Group {
  name: string;
  count: number;
  selfBytes: number;
}

export interface Snapshot {
  raw: RawSnapshot;
  /** Per node index: its group's name. */
  groupOf: (node: number) => string;
  groups: Map<string, Group>;
  totalBytes: number;
}

export async function loadSnapshot(file: string): Promise<Snapshot> {
  const raw = JSON.parse(await readFile(file, "utf8")) as RawSnapshot;
  const { node_fields: fields, node_types: types } = raw.snapshot.meta;
  const width = fields.length;
  const typeAt = fields.indexOf("type");
  const nameAt = fields.indexOf("name");
  const sizeAt = fields.indexOf("self_size");
  const typeNames = types[0];
  const groupOf = (node: number): string => {
    const type = typeNames[raw.nodes[node * width + typeAt]!]!;
    const name = raw.strings[raw.nodes[node * width + nameAt]!]!;
    if (type === "object" || type === "native") return name;
    if (type === "closure") return `(closure) ${name || "anonymous"}`;
    if (type === "array") return `(array) ${name}`;
    if (type === "string" || type === "concatenated string" || type === "sliced string") return "(string)";
    return `(${type})`;
  };
  const groups = new Map<string, Group>();
  let totalBytes = 0;
  const count = raw.nodes.length / width;
  for (let node = 0; node < count; node += 1) {
    const name = groupOf(node);
    const size = raw.nodes[node * width + sizeAt]!;
    totalBytes += size;
    const group = groups.get(name) ?? { name, count: 0, selfBytes: 0 };
    group.count += 1;
    group.selfBytes += size;
    groups.set(name, group);
  }
  return { raw, groupOf, groups, totalBytes };
}

export interface GroupDiff {
  name: string;
  countBefore: number;
  countAfter: number;
  bytesBefore: number;
  bytesAfter: number;
}

export function diffGroups(before: Snapshot, after: Snapshot): GroupDiff[] {
  const names = new Set([...before.groups.keys(), ...after.groups.keys()]);
  return [...names].map((name) => ({
    name,
    countBefore: before.groups.get(name)?.count ?? 0,
    countAfter: after.groups.get(name)?.count ?? 0,
    bytesBefore: before.groups.get(name)?.selfBytes ?? 0,
    bytesAfter: after.groups.get(name)?.selfBytes ?? 0,
  }));
}

/** For the objects of one group: the groups of what refers to them, by how many references (weak ones left out). */
export function retainersOf(snapshot: Snapshot, group: string): Map<string, number> {
  const { raw } = snapshot;
  const width = raw.snapshot.meta.node_fields.length;
  const edgeWidth = raw.snapshot.meta.edge_fields.length;
  const edgeCountAt = raw.snapshot.meta.node_fields.indexOf("edge_count");
  const toAt = raw.snapshot.meta.edge_fields.indexOf("to_node");
  const typeAt = raw.snapshot.meta.edge_fields.indexOf("type");
  const weak = raw.snapshot.meta.edge_types[0].indexOf("weak");
  const holders = new Map<string, number>();
  let edge = 0;
  for (let node = 0; node < raw.nodes.length / width; node += 1) {
    const edges = raw.nodes[node * width + edgeCountAt]!;
    for (let index = 0; index < edges; index += 1, edge += 1) {
      if (raw.edges[edge * edgeWidth + typeAt] === weak) continue;
      const target = raw.edges[edge * edgeWidth + toAt]! / width;
      if (snapshot.groupOf(target) !== group) continue;
      const holder = snapshot.groupOf(node);
      holders.set(holder, (holders.get(holder) ?? 0) + 1);
    }
  }
  return holders;
}

/**
 * For a few objects of one group: the shortest chain of (non-weak) references
 * from the snapshot's root to it, as "group.edge" steps: what keeps it alive.
 */
export function retainingPaths(snapshot: Snapshot, group: string, howMany: number, ignoreEdges: readonly string[] = []): string[][] {
  const { raw } = snapshot;
  const meta = raw.snapshot.meta;
  const width = meta.node_fields.length;
  const edgeWidth = meta.edge_fields.length;
  const edgeCountAt = meta.node_fields.indexOf("edge_count");
  const [toAt, typeAt, nameAt] = ["to_node", "type", "name_or_index"].map((field) => meta.edge_fields.indexOf(field)) as [number, number, number];
  const edgeTypes = meta.edge_types[0];
  const skipped = new Set(["weak", "shortcut"].map((type) => edgeTypes.indexOf(type)));
  const count = raw.nodes.length / width;
  const firstEdge = new Uint32Array(count + 1);
  for (let node = 0; node < count; node += 1) firstEdge[node + 1] = firstEdge[node]! + raw.nodes[node * width + edgeCountAt]!;
  // Breadth first from the root (node 0): each node's parent on a shortest path, and the edge taken.
  const edgeNameOf = (edge: number) => {
    const type = edgeTypes[raw.edges[edge * edgeWidth + typeAt]!];
    const name = raw.edges[edge * edgeWidth + nameAt]!;
    return type === "element" || type === "hidden" ? String(name) : (raw.strings[name] ?? "");
  };
  const parent = new Int32Array(count).fill(-1);
  const via = new Int32Array(count).fill(-1);
  parent[0] = 0;
  const queue = new Uint32Array(count);
  let head = 0;
  let tail = 0;
  queue[tail++] = 0;
  while (head < tail) {
    const node = queue[head++]!;
    for (let edge = firstEdge[node]!; edge < firstEdge[node + 1]!; edge += 1) {
      if (skipped.has(raw.edges[edge * edgeWidth + typeAt]!)) continue;
      if (ignoreEdges.length > 0) {
        const name = edgeNameOf(edge);
        if (ignoreEdges.some((ignored) => name.includes(ignored))) continue;
      }
      const target = raw.edges[edge * edgeWidth + toAt]! / width;
      if (parent[target] !== -1) continue;
      parent[target] = node;
      via[target] = edge;
      queue[tail++] = target;
    }
  }
  const edgeName = (edge: number) => {
    const type = edgeTypes[raw.edges[edge * edgeWidth + typeAt]!];
    const name = raw.edges[edge * edgeWidth + nameAt]!;
    return type === "element" || type === "hidden" ? `[${name}]` : raw.strings[name];
  };
  const paths: string[][] = [];
  for (let node = 0; node < count && paths.length < howMany; node += 1) {
    if (snapshot.groupOf(node) !== group || parent[node] === -1) continue;
    const steps: string[] = [];
    for (let at = node; at !== 0 && steps.length < 40; at = parent[at]!) steps.unshift(`${snapshot.groupOf(parent[at]!)} .${edgeName(via[at]!)}`);
    paths.push([...steps, group]);
  }
  return paths;
}

const kb = (bytes: number) => `${(bytes / 1024).toFixed(1)} KB`;

function table(rows: readonly GroupDiff[]): string {
  const lines = rows.map(
    (row) =>
      `${row.name.slice(0, 48).padEnd(48)} ${String(row.countBefore).padStart(9)} → ${String(row.countAfter).padEnd(9)} ${(row.countAfter - row.countBefore >= 0 ? "+" : "") + String(row.countAfter - row.countBefore).padStart(8)}   ${kb(row.bytesBefore).padStart(11)} → ${kb(row.bytesAfter).padEnd(11)} ${kb(row.bytesAfter - row.bytesBefore).padStart(11)}`,
  );
  return [`${"constructor".padEnd(48)} ${"count".padStart(9)}              Δ   ${"self size".padStart(11)}`, ...lines].join("\n");
}

if (process.argv[1]?.endsWith("heap-diff.ts")) {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: {
      top: { type: "string", default: "30" },
      json: { type: "string" },
      retainers: { type: "string" },
      path: { type: "string" },
      ignore: { type: "string", multiple: true, default: [] },
    },
  });
  const [first, second] = positionals;
  if (first === undefined || second === undefined) {
    console.error("usage: npx tsx bench/heap-diff.ts before.heapsnapshot after.heapsnapshot [--top N] [--json out.json] [--retainers Name]");
    process.exit(2);
  }
  const top = Number(values.top);
  const before = await loadSnapshot(first);
  const after = await loadSnapshot(second);
  const diff = diffGroups(before, after);
  console.log(`self size in all: ${kb(before.totalBytes)} → ${kb(after.totalBytes)} (${kb(after.totalBytes - before.totalBytes)})\n`);
  console.log("Grew most, by self size:");
  console.log(table([...diff].sort((a, b) => b.bytesAfter - b.bytesBefore - (a.bytesAfter - a.bytesBefore)).slice(0, top)));
  console.log("\nGrew most, by count:");
  console.log(table([...diff].sort((a, b) => b.countAfter - b.countBefore - (a.countAfter - a.countBefore)).slice(0, top)));
  if (values.retainers !== undefined) {
    const holders = [...retainersOf(after, values.retainers)].sort((a, b) => b[1] - a[1]).slice(0, top);
    console.log(`\nWhat refers to ${values.retainers} in ${second}:`);
    for (const [holder, references] of holders) console.log(`  ${String(references).padStart(8)}  ${holder}`);
  }
  if (values.path !== undefined) {
    console.log(`\nWhat keeps ${values.path} alive in ${second} (shortest paths from the root, first 3):`);
    for (const steps of retainingPaths(after, values.path, 3, values.ignore)) console.log(`  ${steps.join("\n    → ")}\n`);
  }
  if (values.json !== undefined) {
    await writeFile(values.json, `${JSON.stringify({ before: first, after: second, groups: diff }, null, 1)}\n`);
  }
}
