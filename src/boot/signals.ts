import type { Logger } from "../lib/logger.js";
import { exitOnStartupError } from "./startup-errors.js";

/**
 * The same signal often arrives twice: a terminal (Ctrl-C) or `kill -- -PGID` signals the whole
 * process group, and npm, which relays SIGINT and SIGTERM to its child, sends it again a moment
 * later. Only a signal this long after the first one means "stop now".
 */
export const RELAYED_SIGNAL_MS = 1000;

/** Past the drain window plus this, a shutdown that still hangs (a stuck close) exits with 1 anyway. */
const STOP_DEADLINE_MARGIN_MS = 15_000;

const SIGNALS = ["SIGINT", "SIGTERM", "SIGHUP"] as const;

export interface Lifecycle {
  /** A shutdown step. Steps run one after the other, the last registered first: what started last stops first. */
  onStop(name: string, step: () => Promise<unknown>): void;
  /** Between start-up steps: if a signal came meanwhile, stops what has started and exits 0 (and never resolves). */
  proceed(): Promise<void>;
  /** Start-up is over: a signal from now on stops at once (drain first). */
  started(): void;
  /** Start-up failed after something was started: stops it, then exits 1 with the error's one line. */
  abort(error: unknown): Promise<never>;
}

/**
 * SIGINT, SIGTERM and SIGHUP (a closed terminal), whoever sends them: the process group, npm
 * relaying, a supervisor, or the container runtime to PID 1 (where a signal without a handler
 * would be ignored). The first one stops the server in order — drain, then the pool, then the
 * embedded Postgres — and exits 0; during start-up, once the step under way is done. A second
 * one (after RELAYED_SIGNAL_MS) exits 1 at once; the embedded Postgres is still told to stop by
 * its exit hook.
 */
export function createLifecycle(logger: Logger, graceMs: number): Lifecycle {
  const steps: Step[] = [];
  let firstSignal: { signal: string; at: number } | undefined;
  let starting = true;
  let stopping: Promise<never> | undefined;
  const stop = (signal: string): Promise<never> => (stopping ??= stopInOrder(steps, logger, signal, graceMs));

  const onSignal = (signal: NodeJS.Signals): void => {
    if (firstSignal !== undefined) {
      if (Date.now() - firstSignal.at < RELAYED_SIGNAL_MS) return;
      logger.warn({ signal }, "second signal: exiting now, without draining");
      process.exit(1);
    }
    firstSignal = { signal, at: Date.now() };
    if (starting) logger.info({ signal }, "signal during start-up: stopping once the step under way is done");
    else void stop(signal);
  };
  for (const signal of SIGNALS) process.on(signal, onSignal);

  return {
    onStop: (name, run) => void steps.push({ name, run }),
    proceed: async () => {
      if (firstSignal !== undefined) await stop(firstSignal.signal);
    },
    started: () => {
      starting = false;
      if (firstSignal !== undefined) void stop(firstSignal.signal);
    },
    abort: async (error) => {
      await runSteps(steps, logger).catch(() => {});
      return exitOnStartupError(error, logger);
    },
  };
}

interface Step {
  name: string;
  run: () => Promise<unknown>;
}

/** The last registered first: what started last stops first. */
async function runSteps(steps: readonly Step[], logger: Logger): Promise<void> {
  for (const step of steps.toReversed()) {
    logger.debug({ step: step.name }, "stopping");
    await step.run();
  }
}

/** Runs the steps and exits: 0 when they all finished, 1 on an error or when they outlast the drain window by far. */
async function stopInOrder(steps: readonly Step[], logger: Logger, signal: string, graceMs: number): Promise<never> {
  setTimeout(() => {
    logger.error({ signal, graceMs }, "shutdown still not done past the drain window; exiting now");
    process.exit(1);
  }, graceMs + STOP_DEADLINE_MARGIN_MS).unref();
  logger.info({ signal, graceMs }, "shutting down: draining");
  try {
    await runSteps(steps, logger);
  } catch (error) {
    logger.error({ err: error }, "error while shutting down");
    process.exit(1);
  }
  logger.info("stopped");
  process.exit(0);
}
