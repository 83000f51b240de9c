import { chmod, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { startEmbeddedPostgres } from "../src/db/embedded.js";
import { applyMigrations } from "../src/db/migrate.js";
import { MIGRATIONS_DIR } from "../src/db/open.js";

/** The benches' database: BENCH_DATABASE_URL when set, else a throwaway embedded Postgres; migrated either way. */
export async function benchDatabase(prefix: string): Promise<{ url: string; close(): Promise<void> }> {
  const given = process.env.BENCH_DATABASE_URL;
  if (given) {
    await applyMigrations({ url: given, migrationsDir: MIGRATIONS_DIR });
    return { url: given, close: async () => {} };
  }
  const tempDir = await mkdtemp(path.join(tmpdir(), prefix));
  // As root, Postgres runs as the `postgres` user, which must be able to enter the directory.
  await chmod(tempDir, 0o755);
  const embedded = await startEmbeddedPostgres({ dataDir: path.join(tempDir, "data") });
  await applyMigrations({ url: embedded.url, migrationsDir: MIGRATIONS_DIR });
  return {
    url: embedded.url,
    close: async () => {
      await embedded.stop();
      await rm(tempDir, { recursive: true, force: true });
    },
  };
}
