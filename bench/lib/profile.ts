import { readdir, readFile, stat } from "node:fs/promises";
import path from "node:path";

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}

interface CpuProfile {
  nodes: ProfileNode[];
  startTime: number;
  samples: number[];
  timeDeltas: number[];
}

export interface Frame {
  name: string;
  /** Share of all samples, 0–100. */
  selfPercent: number;
}

/** Where a frame's code lives: a package name, node: internals, or our own file. */
function origin(url: string): string {
  if (url === "") return "(native)";
  if (url.startsWith("node:")) return url;
  const modules = url.lastIndexOf("node_modules/");
  if (modules >= 0) {
    const parts = url.slice(modules + "node_modules/".length).split("/");
    return parts[0]!.startsWith("@") ? `${parts[0]}/${parts[1]}` : parts[0]!;
  }
  const src = url.indexOf("/src/");
  return src >= 0 ? url.slice(src + 1) : path.basename(url);
}

/**
 * The top self-time frames and packages of the largest .cpuprofile in `dir` (the main thread's:
 * tsx's loader thread writes a small one of its own), as shares of the busy (not idle) time,
 * counting only samples `fromMs` or more after the profile began (to leave start-up out).
 */
export async function summariseProfile(
  dir: string,
  options: { fromMs?: number; top?: number } = {},
): Promise<{ file: string; frames: Frame[]; origins: Frame[] }> {
  const files = await Promise.all(
    (await readdir(dir)).filter((f) => f.endsWith(".cpuprofile")).map(async (f) => ({ f, size: (await stat(path.join(dir, f))).size })),
  );
  const file = path.join(dir, files.sort((a, b) => b.size - a.size)[0]?.f ?? "");
  const profile = JSON.parse(await readFile(file, "utf8")) as CpuProfile;
  const byId = new Map(profile.nodes.map((node) => [node.id, node]));
  const selfTime = new Map<number, number>();
  const from = (options.fromMs ?? 0) * 1000;
  let elapsed = 0;
  profile.samples.forEach((id, index) => {
    const delta = profile.timeDeltas[index] ?? 0;
    elapsed += delta;
    if (elapsed >= from) selfTime.set(id, (selfTime.get(id) ?? 0) + delta);
  });
  const frames = new Map<string, number>();
  const origins = new Map<string, number>();
  for (const [id, time] of selfTime) {
    const frame = byId.get(id)!.callFrame;
    if (frame.functionName === "(idle)") continue;
    const where = origin(frame.url);
    const name = `${frame.functionName || "(anonymous)"} (${where}${frame.url ? `:${frame.lineNumber + 1}` : ""})`;
    frames.set(name, (frames.get(name) ?? 0) + time);
    origins.set(where, (origins.get(where) ?? 0) + time);
  }
  const total = [...origins.values()].reduce((a, b) => a + b, 0);
  const ranked = (map: Map<string, number>) =>
    [...map]
      .sort((a, b) => b[1] - a[1])
      .slice(0, options.top ?? 15)
      .map(([name, time]) => ({ name, selfPercent: (100 * time) / total }));
  return { file, frames: ranked(frames), origins: ranked(origins) };
}
