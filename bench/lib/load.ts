import autocannon from "autocannon";
import { cpuTimeMs } from "./cpu.js";

/** The HTTP load of B1 and B2: autocannon, CONNECTIONS connections, DURATION_S seconds after WARMUP_S. */
export const CONNECTIONS = 50;
export const DURATION_S = Number(process.env.BENCH_DURATION ?? 10);
export const WARMUP_S = 2;

export interface Load {
  rps: number;
  p50Ms: number;
  p99Ms: number;
  requests: number;
  /** Connection errors, timeouts (10 s) included: reported, as an overloaded machine has some. */
  errors: number;
  /** The server process's CPU time (user + system) per answered request, when /proc tells. */
  cpuMsPerRequest: number | null;
}

export async function load(
  url: string,
  body: string,
  headers: Record<string, string>,
  seconds: number,
  serverPid?: number,
  connections = CONNECTIONS,
): Promise<Load> {
  const cpuBefore = cpuTimeMs(serverPid);
  const result = await autocannon({
    url,
    method: "POST",
    body,
    headers: { "content-type": "application/json", ...headers },
    connections,
    duration: seconds,
  });
  // Every answer must be a 200; a fast 500 is not throughput.
  if (result.non2xx > 0) throw new Error(`${url}: ${result.non2xx} non-2xx answers under load`);
  const cpuAfter = cpuTimeMs(serverPid);
  const cpuMsPerRequest = cpuBefore === undefined || cpuAfter === undefined || result["2xx"] === 0 ? null : (cpuAfter - cpuBefore) / result["2xx"];
  return {
    rps: result["2xx"] / result.duration,
    p50Ms: result.latency.p50,
    p99Ms: result.latency.p99,
    requests: result["2xx"],
    errors: result.errors,
    cpuMsPerRequest,
  };
}
