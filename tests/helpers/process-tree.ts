import { readdirSync, readFileSync } from "node:fs";

/** A process as /proc shows it; the start time tells it from a later process that got the same pid. */
export interface ProcessEntry {
  pid: number;
  ppid: number;
  pgid: number;
  /** Clock ticks after boot (/proc/PID/stat field 22). */
  startTime: string;
  /** "Z" for a zombie: exited, not yet reaped. */
  state: string;
  command: string;
}

function readEntry(pid: number): ProcessEntry | undefined {
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  } catch {
    return undefined;
  }
  // The command (field 2) is in parentheses and may itself hold spaces or parentheses.
  const close = stat.lastIndexOf(")");
  const fields = stat.slice(close + 2).split(" ");
  let command = stat.slice(stat.indexOf("(") + 1, close);
  try {
    command = readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0").join(" ").trim() || command;
  } catch {
    // Gone meanwhile: the short name will do.
  }
  return { pid, state: fields[0]!, ppid: Number(fields[1]), pgid: Number(fields[2]), startTime: fields[19]!, command };
}

export function allProcesses(): ProcessEntry[] {
  return readdirSync("/proc")
    .filter((name) => /^\d+$/.test(name))
    .map((name) => readEntry(Number(name)))
    .filter((entry): entry is ProcessEntry => entry !== undefined);
}

/** `root` and every process below it, whatever process group or session it moved to. */
export function processTree(root: number): ProcessEntry[] {
  const all = allProcesses();
  const children = new Map<number, ProcessEntry[]>();
  for (const entry of all) children.set(entry.ppid, [...(children.get(entry.ppid) ?? []), entry]);
  const tree = all.filter((entry) => entry.pid === root);
  for (let index = 0; index < tree.length; index += 1) tree.push(...(children.get(tree[index]!.pid) ?? []));
  return tree;
}

/** Those of `entries` still alive (the same pid with the same start time, and not a zombie). */
export function stillAlive(entries: readonly ProcessEntry[]): ProcessEntry[] {
  return entries.filter((entry) => {
    const now = readEntry(entry.pid);
    return now !== undefined && now.startTime === entry.startTime && now.state !== "Z";
  });
}

/** Live processes in any of these process groups. */
export function inGroups(pgids: readonly number[]): ProcessEntry[] {
  return allProcesses().filter((entry) => pgids.includes(entry.pgid) && entry.state !== "Z");
}
