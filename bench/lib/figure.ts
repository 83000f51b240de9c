/** One row of BENCHMARKS.md and bench/results.json. */
export type Status = "met" | "missed" | "pending" | "info";

export interface Figure {
  /** Scenario id: B1…B7, or list/push for the one-at-a-time medians. */
  id: string;
  /** What is measured, e.g. "throughput (req/s)". */
  figure: string;
  ours: number | null;
  baseline: number | null;
  /** ours / baseline, when both exist. */
  ratio: number | null;
  unit: string;
  /** The goal in words, e.g. "ratio ≥ 0.5". */
  goal: string;
  status: Status;
  note?: string;
}

export function figure(row: Omit<Figure, "ratio" | "status"> & { met?: boolean | null; status?: Status }): Figure {
  const { met, status, ...rest } = row;
  const ratio = rest.ours !== null && rest.baseline !== null && rest.baseline !== 0 ? rest.ours / rest.baseline : null;
  return { ...rest, ratio, status: status ?? (met === undefined || met === null ? "info" : met ? "met" : "missed") };
}

/** Scenario ids with a goal not met yet because its feature has not landed. */
export function pending(id: string, what: string, goal: string, note: string): Figure {
  return { id, figure: what, ours: null, baseline: null, ratio: null, unit: "", goal, status: "pending", note };
}

export function percentile(samples: readonly number[], p: number): number {
  return percentileOfSorted(
    [...samples].sort((a, b) => a - b),
    p,
  );
}

/** The p-th percentile (nearest rank) of samples already sorted ascending; NaN when there are none. */
export function percentileOfSorted(sorted: ArrayLike<number>, p: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

export function median(samples: readonly number[]): number {
  return percentile(samples, 50);
}
