import type { Db } from "../db/client.js";
import type { Logger } from "../logger.js";
import type { ReconnectInfo } from "./listener.js";

/**
 * One kind of push (messages, tasks) for one user. A feed keeps its
 * subscribers and the work they are owed: starting points to read, hinted
 * rows to re-read, catch-up after a listener outage. The user's hub decides
 * when flush() runs (one at a time, in the user's order) and retries it with
 * backoff when it throws; a feed keeps whatever failed pending until a flush
 * succeeds or its subscribers leave, so nothing is dropped and, because every
 * delivery is checked against what each subscriber already has, nothing is
 * delivered twice.
 */
export interface Feed {
  /** Subscribers registered now (starting, replaying or live). */
  readonly size: number;
  /** Events waiting in its subscribers' buffers. */
  readonly buffered: number;
  /** Everything pending: starts, catch-up, hinted re-reads. Throws when the database fails. */
  flush(): Promise<void>;
  /** The listener was down: what committed since `info.since` is caught up at the next flush. */
  reconnected(info: ReconnectInfo): void;
}

export interface FeedContext {
  userId: string;
  db: Db;
  logger: Logger;
  /** Asks the user's hub for a flush. */
  requestFlush: () => void;
  /** Called once per subscription when nothing committed from now on can be missed. */
  established: () => void;
}

export interface FeedLimits {
  /** Events that may wait for one subscriber; one more ends it with SUBSCRIPTION_OVERFLOW. */
  bufferLimit: number;
  /** Rows read per query (replays and live re-reads). */
  pageSize: number;
}
