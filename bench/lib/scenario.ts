import type { Figure } from "./figure.js";

export interface BenchContext {
  /** The bench's migrated database (BENCH_DATABASE_URL, else an embedded Postgres). */
  url: string;
  log(message: string): void;
  /** Set by --profile: where the API child writes its `node --cpu-prof` profile during B1/B2. */
  cpuProfDir?: string;
  /** Set by the scenario that profiles: how long after its spawn the profiled process was ready (start-up is left out). */
  profileFromMs?: number;
}

export interface Scenario {
  /** The figure ids this scenario produces; it runs when any of them is asked for. */
  ids: readonly string[];
  run(ctx: BenchContext, ids: ReadonlySet<string>): Promise<Figure[]>;
}
