export type DatabaseDriver = "pg" | "neon";

/** How the server reaches Postgres (DATABASE_URL and friends; see src/boot/config.ts). */
export interface DatabaseSettings {
    /** Unset: the embedded Postgres under ./.data/postgres. */
    url: string | undefined;
    /** The unpooled endpoint, for migrations and LISTEN. Defaults to url. */
    directUrl: string | undefined;
    driver: DatabaseDriver;
    poolSize: number;
    connectionTimeoutMs: number;
    /** Postgres statement_timeout on every pooled connection, in ms (0 = none). */
    statementTimeoutMs: number;
}
