import { readFileSync } from "node:fs";

/**
 * The most sockets one process is meant to hold: B3 benchmarks fan-out to
 * 15,000 graphql-ws sockets, and B5 measured about 28.5 KB of RSS per idle
 * one (about 430 MB at 15,000).
 */
export const DESIGN_MAX_CONNECTIONS = 15_000;

/** A quarter of the open-file limit stays free for the database pool, LISTEN, HTTP requests and /health. */
const FD_SHARE_FOR_SOCKETS = 0.75;

/** The soft limit on open files (`ulimit -n`), where the platform says; undefined when unknown or unlimited. */
export function openFileLimit(): number | undefined {
  try {
    const limits = readFileSync("/proc/self/limits", "utf8");
    const match = /^Max open files\s+(\d+)/m.exec(limits);
    return match ? Number(match[1]) : undefined;
  } catch {
    return undefined; // Not Linux: the configured or design figure stands.
  }
}

/** WS_MAX_CONNECTIONS when unset: the design figure, or three quarters of the open-file limit if that is lower. */
export function defaultMaxConnections(fdLimit: number | undefined): number {
  if (fdLimit === undefined) return DESIGN_MAX_CONNECTIONS;
  return Math.max(1, Math.min(DESIGN_MAX_CONNECTIONS, Math.floor(fdLimit * FD_SHARE_FOR_SOCKETS)));
}

/** Whether a configured cap leaves the headroom the default keeps. */
export function leavesFdHeadroom(maxConnections: number, fdLimit: number | undefined): boolean {
  return fdLimit === undefined || maxConnections <= Math.floor(fdLimit * FD_SHARE_FOR_SOCKETS);
}
