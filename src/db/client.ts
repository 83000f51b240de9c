import { neonConfig } from "@neondatabase/serverless";
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

/** The pg pool behind each client made here; the Neon driver keeps its pool to itself. */
const pools = new WeakMap<Db, pg.Pool>();

/**
 * The pools a hot read may query directly, skipping Prisma's raw-query path:
 * only clients without a query listener, so every statement a test or the
 * bench counts still goes through Prisma's query events.
 */
const directPools = new WeakMap<Db, pg.Pool>();

/** The pg pool under `db` when it is such a client itself (not a transaction, not neon); else undefined. */
export function directPool(db: DbClient): pg.Pool | undefined {
  return directPools.get(db as Db);
}

/** The client's pool counts, or undefined when its driver does not show them (neon). */
export function poolStats(db: Db): PoolStats | undefined {
  const pool = pools.get(db);
  return pool && { total: pool.totalCount, idle: pool.idleCount, waiting: pool.waitingCount };
}

export function createDb(options: DbOptions): Db {
  const pool = options.driver === "neon" ? undefined : pgPool(options);
  const adapter = pool ? new PrismaPg(pool) : neonAdapter(options);
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
  if (pool) pools.set(client, pool);
  if (pool && !options.onQuery) directPools.set(client, pool);
  return client;
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

function neonAdapter(options: DbOptions): PrismaNeon {
  neonConfig.webSocketConstructor ??= WebSocket;
  return new PrismaNeon({
    connectionString: options.url,
    max: options.poolSize,
    connectionTimeoutMillis: options.connectionTimeoutMs,
    ...statementTimeout(options),
  });
}

function statementTimeout(options: DbOptions): { statement_timeout?: number } {
  return options.statementTimeoutMs ? { statement_timeout: options.statementTimeoutMs } : {};
}
