export type DatabaseDriver = "pg" | "neon";

/** The embedded cluster's folder when EMBEDDED_DATA_DIR is unset, relative to the working directory. */
export const EMBEDDED_DATA_DIR = ".data/postgres";

/** How the server reaches Postgres (DATABASE_URL and friends; see src/boot/config.ts). */
export interface DatabaseSettings {
  /** Unset: the embedded Postgres, in embeddedDataDir. */
  url: string | undefined;
  /** EMBEDDED_DATA_DIR: where the embedded Postgres keeps its cluster (relative to the working directory). */
  embeddedDataDir: string;
  /** The unpooled endpoint, for migrations and LISTEN. Defaults to url. */
  directUrl: string | undefined;
  driver: DatabaseDriver;
  poolSize: number;
  connectionTimeoutMs: number;
  /** Postgres statement_timeout on every pooled connection, in ms (0 = none). */
  statementTimeoutMs: number;
}
