import { setTimeout as sleep } from "node:timers/promises";
import { backoffDelay, type BackoffPolicy } from "../lib/backoff.js";
import type { Db } from "../db/client.js";
import { unavailableReason } from "../db/unavailable.js";
import { activeTurn, endTurn, getTurn, interruptIfDead, requestCancel, turnControl, type TurnIdentity } from "../domain/conversation-log.js";
import { cancelWaitingTurn, decideToolCalls, type Decision } from "../domain/decisions.js";
import { AppError, ErrorCode } from "../lib/errors.js";
import type { Logger } from "../lib/logger.js";
import { memoized } from "../lib/memo.js";
import { userTimezone } from "../domain/user-settings.js";
import type { Conversation, Message, Turn } from "../generated/prisma/client.js";
import { userChannel, type Notification } from "../realtime/protocol.js";
import { DEFAULT_APPROVAL_TTL_MS } from "./approval-policy.js";
import { ApprovalExpiry } from "./approval-expiry.js";
import { leaseHandle, leaseTtlMs, newLeaseId, type Lease } from "./lease.js";
import { runTurn } from "./turn.js";
import { TurnLog } from "./turn-log.js";
import { RETRY_LATER, unavailable } from "./turn-end.js";
import { NO_CHAT_TELEMETRY, TurnStoppedError, type AssistantDeps, type TurnEnd, type TurnRun } from "./turn-run.js";

/**
 * A turn that failed because the database could not serve it (an outage, a
 * pool that could not connect, a statement timeout) is an operational
 * condition, retried by the client, not a bug: a warning with the reason,
 * which is what an operator acts on. Only the reason: no driver text, so
 * nothing of the turn's content or the statement's values can ride along.
 * Anything else is a bug: an error, with the whole error.
 */
function logFailure(logger: Logger, error: unknown, turnId: string): void {
  const reason = unavailableReason(error);
  if (reason !== undefined) logger.warn({ turnId, reason }, "a chat turn failed: the database is unavailable");
  else logger.error({ err: error, turnId }, "a chat turn failed unexpectedly");
}

/** The one thing the assistant needs of the realtime transport (src/realtime/transport.ts). */
export interface ChannelListener {
  listen(channel: string, handler: (notification: Notification) => void): Promise<() => Promise<void>>;
}

/**
 * How stale a running turn's knowledge of its row may get before it reads it,
 * in case a cancel notification was lost: every write checks the row too, so
 * the read is made only after this long without one (looked at every tick).
 */
const STOP_POLL_MS = 500;
const STOP_POLL_TICK_MS = 100;
/** How often a waiter on another instance's turn reads it, in case the end's notification was lost. */
const WAIT_POLL_MS = 1000;
/** How long cancelTurn waits for the turn to end before it answers with the turn as it is. */
const CANCEL_WAIT_MS = 5000;
/** How long stop() waits for this instance's turns to end. */
const SHUTDOWN_WAIT_MS = 10_000;
/** How often a lease the database could not take back is offered again: from about 100 ms, doubling, at most 2 s apart. */
const HAND_BACK_BACKOFF: BackoffPolicy = { initialMs: 100, maxMs: 2000 };

export interface OpenedRun {
  turn: Turn;
  userMessage: Message;
  /** The conversation's lease, held: the run releases it when the turn ends. */
  lease: Lease;
  /** The conversation row as the opening left it: the turn's log is then [userMessage], and is not read. */
  conversation?: Conversation | undefined;
  /** The user's time zone, when the opening read it; else the turn reads it on first use. */
  timezone?: string | undefined;
}

/**
 * One app instance's chat turns. A turn runs here in the background, detached
 * from the request that started it: a client that goes away never stops it.
 * It stops early only when cancelled (a notification on the user's channel,
 * with the turn row read at every step and flush as a backstop), when a bound
 * or a failure ends it, or when this instance shuts down (stop()).
 */
export class Assistant {
  private readonly running = new Map<string, { controller: AbortController; done: Promise<TurnEnd> }>();
  /** Leases being handed back in the background, while the database is away. */
  private readonly handBacks = new Set<Promise<void>>();
  /** Aborted by stop(): hand-backs make one last try instead of waiting. */
  private readonly stopping = new AbortController();
  /** Ends turns whose approval expired, on time (started by startSweeps). */
  private readonly expiry: ApprovalExpiry;

  constructor(
    readonly db: Db,
    readonly deps: AssistantDeps,
    private readonly listener?: ChannelListener,
  ) {
    this.expiry = new ApprovalExpiry(db, deps.logger);
  }

  /** Starts this instance's sweep of expired approvals (the app does, at start; stop() ends it). */
  startSweeps(): void {
    if (this.deps.approvalSweep !== false) this.expiry.start();
  }

  /** Turns running in this instance now. */
  get runningCount(): number {
    return this.running.size;
  }

  /**
   * Runs an opened turn in the background. Its clock starts now: it holds the
   * conversation's lease. The promise never rejects: a failure is in `error`.
   */
  launch(opened: OpenedRun): Promise<TurnEnd> {
    const { turn, userMessage, lease, conversation } = opened;
    const identity: TurnIdentity = { id: turn.id, userId: turn.userId, conversationId: turn.conversationId };
    const controller = new AbortController();
    const log = new TurnLog(this.db, userMessage, conversation && { messages: [userMessage], conversation });
    const run: TurnRun = {
      db: this.db,
      deps: this.deps,
      turn: identity,
      userMessage,
      log,
      signal: controller.signal,
      // A turn resumed after a pause gets what is left of its time: the wait is not counted.
      deadline: performance.now() + this.deps.turnTimeoutMs - turn.timeUsedMs,
      decided: turn.lastDecisionAt !== null,
      checkStop: () => this.checkStop(identity.id, controller, log),
      zone: zoneOf(opened.timezone, () => userTimezone(this.db, identity.userId)),
    };
    // Launched inside the request (sendMessage, or the decision that resumes it): the turn's
    // span is a child of that operation's, so one trace holds the turn, however long it runs on.
    const telemetry = this.deps.telemetry ?? NO_CHAT_TELEMETRY;
    const done = telemetry.turn(identity, () => this.drive(run, controller, lease)).finally(() => this.running.delete(turn.id));
    this.running.set(turn.id, { controller, done });
    return done;
  }

  private async checkStop(turnId: string, controller: AbortController, log: TurnLog): Promise<void> {
    if (controller.signal.aborted) return;
    try {
      const control = await turnControl(this.db, turnId);
      if (control?.status === "RUNNING" && !control.cancelRequested) log.checked();
      if (control?.cancelRequested) controller.abort(new TurnStoppedError("cancelled"));
      else if (control?.status !== "RUNNING") controller.abort(new TurnStoppedError("interrupted"));
    } catch (error) {
      this.deps.logger.warn({ err: error, turnId }, "could not read the turn's row; the next check retries");
    }
  }

  private async drive(run: TurnRun, controller: AbortController, lease: Lease): Promise<TurnEnd> {
    const { logger } = this.deps;
    const turnId = run.turn.id;
    const unlisten = await this.listener
      ?.listen(userChannel(run.turn.userId), (note) => {
        if (note.kind === "turn" && note.turnId === turnId && note.cancelRequested) controller.abort(new TurnStoppedError("cancelled"));
      })
      .catch((error: unknown) => {
        logger.warn({ err: error, turnId }, "could not listen for a cancel; polling the turn instead");
        return undefined;
      });
    const poll = setInterval(() => {
      if (performance.now() - run.log.checkedAt >= STOP_POLL_MS) void run.checkStop();
    }, STOP_POLL_TICK_MS);
    poll.unref();
    let endStored = true;
    let released = false;
    try {
      const end = await runTurn(run);
      if (end.turn?.status === "REQUIRES_ACTION") this.expiry.pausedFor(this.deps.approvalTtlMs ?? DEFAULT_APPROVAL_TTL_MS);
      released = end.leaseReleased === true;
      return end;
    } catch (error) {
      // An AppError is an expected end (its conversation was deleted meanwhile): the client gets it as it is.
      if (error instanceof AppError) return { error };
      logFailure(logger, error, turnId);
      endStored = await this.failUnexpectedly(run);
      return { error };
    } finally {
      clearInterval(poll);
      await unlisten?.().catch((error: unknown) => logger.warn({ err: error, turnId }, "could not stop listening for a cancel"));
      // The turn's own end gave the lease back with it, in its statement.
      if (!released) await this.handBack(run.turn, lease, !endStored);
    }
  }

  /** Ends the turn FAILED if the database still answers (the client gets the error itself; maskError codes it). True if it did. */
  private async failUnexpectedly(run: TurnRun): Promise<boolean> {
    try {
      await endTurn(this.db, run.turn, { status: "FAILED", stopCode: ErrorCode.ASSISTANT_UNAVAILABLE });
      return true;
    } catch (endError) {
      this.deps.logger.warn({ err: endError, turnId: run.turn.id }, "could not mark the turn FAILED; it is handed back as interrupted");
      return false;
    }
  }

  /**
   * Gives the conversation's lease back, and with `interrupt` (the turn's end
   * could not be stored) marks the turn interrupted, which a lease given back
   * allows. When the database is away (the usual reason a turn's end could
   * not be stored), this is retried in the background until it is back, for
   * as long as the lease would last: otherwise a clientMessageId retry after
   * a database restart would wait for the lease to expire (turn time + 30 s)
   * before it could resume the turn.
   */
  private async handBack(turn: TurnIdentity, lease: Lease, interrupt: boolean): Promise<void> {
    const attempt = async () => {
      await lease.release();
      if (interrupt) await interruptIfDead(this.db, turn.userId, turn.id);
    };
    try {
      await attempt();
      return;
    } catch (error) {
      this.deps.logger.warn(
        { err: error, turnId: turn.id },
        "releasing the conversation's lease failed; retrying in the background (else it expires by itself)",
      );
    }
    const retrying = this.retryHandBack(turn.id, attempt).finally(() => this.handBacks.delete(retrying));
    this.handBacks.add(retrying);
  }

  private async retryHandBack(turnId: string, attempt: () => Promise<void>): Promise<void> {
    const { logger } = this.deps;
    const until = performance.now() + leaseTtlMs(this.deps.turnTimeoutMs);
    for (let tries = 0; performance.now() < until; tries += 1) {
      // Stopping: one last try now, then the lease is left to expire.
      await sleep(backoffDelay(tries, HAND_BACK_BACKOFF), undefined, { signal: this.stopping.signal }).catch(() => {});
      try {
        await attempt();
        logger.info({ turnId, tries: tries + 1 }, "handed the conversation's lease back");
        return;
      } catch {
        if (this.stopping.signal.aborted) break;
      }
    }
    logger.warn({ turnId }, "could not hand the conversation's lease back; it expires by itself");
  }

  /**
   * Waits for a turn to end, wherever it runs, up to `limitMs`. A turn whose
   * instance died (its lease expired meanwhile) is marked interrupted here.
   */
  async waitForEnd(userId: string, turnId: string, userMessage?: Message, limitMs = Number.POSITIVE_INFINITY): Promise<TurnEnd> {
    const local = this.running.get(turnId);
    if (local) {
      if (!Number.isFinite(limitMs)) return local.done;
      let timer: NodeJS.Timeout | undefined;
      const late = new Promise<undefined>((resolve) => {
        timer = setTimeout(() => resolve(undefined), limitMs);
      });
      const end = await Promise.race([local.done, late]).finally(() => clearTimeout(timer));
      return end ?? { turn: await getTurn(this.db, userId, turnId) };
    }
    return this.watchRemote(userId, turnId, userMessage, limitMs);
  }

  private async watchRemote(userId: string, turnId: string, userMessage: Message | undefined, limitMs: number): Promise<TurnEnd> {
    let woken = false;
    let wake = () => {
      woken = true;
    };
    const unlisten = await this.listener
      ?.listen(userChannel(userId), (note) => {
        if (note.kind === "turn" && note.turnId === turnId && note.status !== "RUNNING") wake();
      })
      .catch(() => undefined);
    const until = performance.now() + limitMs;
    try {
      for (;;) {
        woken = false;
        const turn = await getTurn(this.db, userId, turnId);
        if (turn.status !== "RUNNING") return { turn, error: this.errorOf(turn, userMessage) };
        if (await interruptIfDead(this.db, userId, turnId)) continue;
        const left = until - performance.now();
        if (left <= 0) return { turn };
        if (woken) continue;
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, Math.min(WAIT_POLL_MS, left));
          wake = () => {
            clearTimeout(timer);
            resolve();
          };
        });
      }
    } finally {
      await unlisten?.().catch(() => {});
    }
  }

  /** What a waiter is told of a turn that another instance ended. */
  private errorOf(turn: Turn, userMessage: Message | undefined) {
    if (turn.status !== "FAILED" || !userMessage) return undefined;
    return unavailable(RETRY_LATER, true, userMessage);
  }

  /**
   * Stops a RUNNING turn wherever it runs and answers with it once it has
   * ended (or after CANCEL_WAIT_MS, as it is then). An ended turn is returned
   * as it is; another user's is NOT_FOUND.
   */
  async cancelTurn(userId: string, turnId: string): Promise<Turn> {
    let turn = await getTurn(this.db, userId, turnId);
    if (turn.status === "REQUIRES_ACTION") {
      // Waiting for approval: nothing runs it, so it ends here, at once.
      const ended = await cancelWaitingTurn(this.db, userId, turnId);
      if (ended) return ended;
      // A decision resumed it meanwhile: stop it as a running turn.
      turn = await getTurn(this.db, userId, turnId);
    }
    if (turn.status !== "RUNNING") return turn;
    if (await interruptIfDead(this.db, userId, turnId)) return getTurn(this.db, userId, turnId);
    await requestCancel(this.db, userId, turnId);
    // Here, the notification is not even needed.
    this.running.get(turnId)?.controller.abort(new TurnStoppedError("cancelled"));
    const end = await this.waitForEnd(userId, turnId, undefined, CANCEL_WAIT_MS);
    return end.turn ?? getTurn(this.db, userId, turnId);
  }

  /**
   * Records the user's decisions on a waiting turn's held calls (see
   * domain/decisions.ts). The last decision resumes the turn here, on this
   * instance, in the background: the answer is the turn, RUNNING again.
   */
  async decideToolCalls(userId: string, turnId: string, decisions: readonly Decision[]): Promise<Turn> {
    const leaseId = newLeaseId();
    const outcome = await decideToolCalls(this.db, userId, turnId, decisions, { leaseId, ttlMs: leaseTtlMs(this.deps.turnTimeoutMs) });
    if (outcome.resumed && outcome.userMessage) {
      const lease = leaseHandle(this.db, outcome.turn.conversationId, leaseId);
      void this.launch({ turn: outcome.turn, userMessage: outcome.userMessage, lease });
    }
    return outcome.turn;
  }

  /** The conversation's turn in progress, RUNNING or waiting for approval (one whose instance died is marked interrupted instead). */
  activeTurn(userId: string, conversationId: string): Promise<Turn | null> {
    return activeTurn(this.db, userId, conversationId);
  }

  /** Shutting down: this instance's turns end now, FAILED / INTERRUPTED, resumable with their clientMessageId. */
  /** Waits, without stopping them, for this instance's turns to end; false when `ms` passes first. */
  async finished(ms: number): Promise<boolean> {
    const runs = [...this.running.values()];
    if (runs.length === 0) return true;
    let timer: NodeJS.Timeout | undefined;
    const ended = await Promise.race([
      Promise.allSettled(runs.map((run) => run.done)).then(() => true),
      new Promise<boolean>((resolve) => {
        timer = setTimeout(() => resolve(false), ms);
      }),
    ]);
    clearTimeout(timer);
    return ended;
  }

  async stop(): Promise<void> {
    this.expiry.stop();
    const runs = [...this.running.values()];
    for (const { controller } of runs) controller.abort(new TurnStoppedError("shutdown"));
    this.stopping.abort();
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      Promise.allSettled(runs.map((run) => run.done)).then(() => Promise.allSettled([...this.handBacks])),
      new Promise<void>((resolve) => {
        timer = setTimeout(resolve, SHUTDOWN_WAIT_MS);
      }),
    ]);
    clearTimeout(timer);
  }
}

/** The turn's time zone: the one the opening read, else read once on first use. */
function zoneOf(known: string | undefined, read: () => Promise<string>): () => Promise<string> {
  if (known !== undefined) return () => Promise.resolve(known);
  return memoized(read);
}
