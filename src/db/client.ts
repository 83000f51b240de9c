import { neonConfig, type Pool as NeonPool, type PoolClient as NeonPoolClient } from "@neondatabase/serverless";
import { PrismaNeon } from "@prisma/adapter-neon";
import { PrismaPg } from "@prisma/adapter-pg";
import pg from "pg";
import { WebSocket } from "ws";
import type { DatabaseDriver } from "./settings.js";
import { PrismaClient, type Prisma } from "../generated/prisma/client.js";

export type Db = PrismaClient;

/** The client or an interactive transaction: what domain functions that may run inside one take. */
export type DbClient = Prisma.TransactionClient;

export interface DbOptions {
  url: string;
  driver: DatabaseDriver;
  poolSize: number;
  /** An exhausted pool fails a query after this long instead of hanging. */
  connectionTimeoutMs: number;
  /**
   * Postgres statement_timeout for every connection of the pool (0 or unset: none), so no
   * query can run for minutes whatever slips past the GraphQL limits. Sent as a startup
   * parameter, so it holds from the first statement and needs no extra round trip.
   */
  statementTimeoutMs?: number;
  /** Called with every SQL statement Prisma sends (tests count them). */
  onQuery?: (sql: string) => void;
}

export interface NeonTransportOverrides {
  /** `host:port/path` of a WebSocket-to-TCP proxy, for local tests. */
  wsProxy: string;
  useSecureWebSocket: boolean;
}

/**
 * Points the Neon driver at a local WebSocket proxy. The driver's settings are
 * process-wide, so this is a separate, explicit call rather than a DbOptions field.
 */
export function configureNeonTransport(overrides: NeonTransportOverrides): void {
  neonConfig.wsProxy = () => overrides.wsProxy;
  neonConfig.useSecureWebSocket = overrides.useSecureWebSocket;
  // Pipelining skips round trips by assuming TLS and cleartext auth; a plain
  // local proxy speaks neither.
  neonConfig.pipelineTLS = overrides.useSecureWebSocket;
  neonConfig.pipelineConnect = false;
}

/** A pool's connections now: what the metrics read at each scrape. */
export interface PoolStats {
  /** Open connections, in use or idle. */
  total: number;
  idle: number;
  /** Queries waiting for a connection. */
  waiting: number;
}

/** What a pool's counts are read from: a pg.Pool and the Neon driver's Pool alike. */
type CountedPool = Pick<pg.Pool, "totalCount" | "idleCount" | "waitingCount">;

/** What createDb knows of each client's pools. */
interface ClientPools {
  /** The pg pool (pg driver): ours to end (closeDb). */
  own: pg.Pool | undefined;
  /**
   * The pool a hot read may query directly, skipping Prisma's raw-query path: only on clients
   * without a query listener, so every statement a test or the bench counts still goes through
   * Prisma's query events.
   */
  direct: pg.Pool | undefined;
  /** The pool as it is now: the pg pool, or the Neon pool once Prisma has connected. */
  counted: () => CountedPool | undefined;
}

const clientPools = new WeakMap<Db, ClientPools>();

/** The pg pool under `db` when it is such a client itself (not a transaction, not neon); else undefined. */
export function directPool(db: DbClient): pg.Pool | undefined {
  return clientPools.get(db as Db)?.direct;
}

/** The client's pool counts, or undefined while it has no pool (neon before its first query). */
export function poolStats(db: Db): PoolStats | undefined {
  const pool = clientPools.get(db)?.counted();
  return pool && { total: pool.totalCount, idle: pool.idleCount, waiting: pool.waitingCount };
}

/**
 * Disconnects the client and ends its pool: the shutdown's step for the database. PrismaPg given
 * a pool of ours only stops listening to it on $disconnect (its `disposeExternalPool` would end
 * it, but then a query after $disconnect would reconnect on a new pool of the adapter's own,
 * without the listeners pgPool adds). Left open, the pool's connections would keep their
 * backends (a share of the server's max_connections) past this step, through the steps after it
 * (the traces' export) until the idle timeout or the process's exit. The Neon adapter ends its
 * own pool on $disconnect.
 */
export async function closeDb(db: Db): Promise<void> {
  await db.$disconnect();
  const pool = clientPools.get(db)?.own;
  // A pool ended twice rejects; whoever ended it first, it is ended.
  if (pool && !pool.ended) await pool.end();
}

export function createDb(options: DbOptions): Db {
  const { adapter, pool, counted } = driverAdapter(options);
  const client = new PrismaClient({
    adapter,
    log: options.onQuery ? [{ emit: "event", level: "query" }] : [],
    // An interactive transaction waits for its connection as long as any query does
    // (Prisma's own default is 2 s, which under load failed transactions before the pool's timeout).
    transactionOptions: { maxWait: options.connectionTimeoutMs },
  });
  if (options.onQuery) {
    const onQuery = options.onQuery;
    client.$on("query", (event) => onQuery(event.query));
  }
  clientPools.set(client, { own: pool, direct: options.onQuery ? undefined : pool, counted });
  return client;
}

/** The driver's adapter, with the pg pool when the pool is ours, and how to find the pool whose counts show. */
function driverAdapter(options: DbOptions): {
  adapter: PrismaPg | ListenedPrismaNeon;
  pool?: pg.Pool;
  counted: () => CountedPool | undefined;
} {
  if (options.driver === "neon") {
    const neon = neonAdapter(options);
    return { adapter: neon, counted: () => neon.pool };
  }
  const pool = pgPool(options);
  return { adapter: new PrismaPg(pool), pool, counted: () => pool };
}

function pgPool(options: DbOptions): pg.Pool {
  const pool = new pg.Pool({
    connectionString: options.url,
    max: options.poolSize,
    connectionTimeoutMillis: options.connectionTimeoutMs,
    idleTimeoutMillis: 30_000,
    ...statementTimeout(options),
  });
  // An idle client that loses its connection emits on the pool; without a
  // listener that would crash the process. The pool discards the client itself.
  pool.on("error", () => {});
  // A client checked out of the pool has neither the pool's listener nor, for a
  // moment, anyone else's: the pool hands a released connection to a waiting
  // interactive transaction at once, while the adapter adds its listener only
  // when its `await pool.connect()` resumes. When the backend's 57P01 (a
  // database restart) is read in the same chunk as the statement's answer that
  // released it, pg emits 'error' in that gap, on nobody, and the process dies
  // (tests/faults/connection-error-events.test.ts). With a listener for the
  // client's life, the transaction's first statement fails instead (retryable,
  // SERVICE_UNAVAILABLE) and the pool drops the broken client on release.
  pool.on("connect", (client) => client.on("error", () => {}));
  return pool;
}

function neonAdapter(options: DbOptions): ListenedPrismaNeon {
  neonConfig.webSocketConstructor ??= WebSocket;
  return new ListenedPrismaNeon({
    connectionString: options.url,
    max: options.poolSize,
    connectionTimeoutMillis: options.connectionTimeoutMs,
    ...statementTimeout(options),
  });
}

/**
 * PrismaNeon whose pool gives every client an 'error' listener for the client's life, as pgPool
 * does for pg and for the same reason: the Neon driver is node-postgres underneath, its pool
 * hands a released connection straight to a waiting interactive transaction, and the adapter's
 * startTransaction adds its listener only after its `await pool.connect()` resumes. A 57P01 read
 * in the same WebSocket message as the answer that released the connection is emitted in that
 * gap, on nobody, and ends the process (tests/faults/connection-error-events.test.ts, neon).
 * The factory makes its pool inside connect() with only a pool-level listener; the pool is
 * reached through the adapter before connect() returns, so before any client can connect.
 */
class ListenedPrismaNeon extends PrismaNeon {
  /** The pool of the adapter connected last (a reconnect after $disconnect makes a new one): for poolStats. */
  pool: NeonPool | undefined;

  override async connect(): ReturnType<PrismaNeon["connect"]> {
    const adapter = await super.connect();
    const pool = adapter.underlyingDriver();
    // With a listener for the client's life, the transaction's BEGIN fails instead (retryable,
    // SERVICE_UNAVAILABLE) and the pool drops the broken client on release.
    pool.on("connect", (client: NeonPoolClient) => client.on("error", () => {}));
    this.pool = pool;
    return adapter;
  }
}

function statementTimeout(options: DbOptions): { statement_timeout?: number } {
  return options.statementTimeoutMs ? { statement_timeout: options.statementTimeoutMs } : {};
}
