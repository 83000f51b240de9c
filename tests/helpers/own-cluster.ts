import { chmod, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { freePort, startEmbeddedPostgres, type EmbeddedDatabase } from "../../src/db/embedded.js";
import { applyMigrations } from "../../src/db/migrate.js";
import { MIGRATIONS_DIR } from "../../src/db/open.js";

/** A migrated embedded Postgres that a test may stop and start under load, on a port that stays the same. */
export interface OwnCluster {
  url: string;
  stop(): Promise<void>;
  start(): Promise<void>;
  /** Stops it (if running) and deletes its files. */
  dispose(): Promise<void>;
}

export async function startOwnCluster(): Promise<OwnCluster> {
  const dir = await mkdtemp(path.join(tmpdir(), "todo-own-pg-"));
  // As root, Postgres runs as the `postgres` user, which must be able to enter the directory.
  await chmod(dir, 0o755);
  const dataDir = path.join(dir, "data");
  const port = await freePort();
  let running: EmbeddedDatabase | undefined = await startEmbeddedPostgres({ dataDir, port });
  const url = running.url;
  await applyMigrations({ url, migrationsDir: MIGRATIONS_DIR });
  return {
    url,
    async stop() {
      await running?.stop();
      running = undefined;
    },
    async start() {
      running ??= await startEmbeddedPostgres({ dataDir, port });
    },
    async dispose() {
      await running?.stop();
      running = undefined;
      await rm(dir, { recursive: true, force: true });
    },
  };
}
