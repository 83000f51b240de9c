// Runs `prisma generate`. Generate never starts Prisma's schema engine, but the
// CLI still tries to download it unless PRISMA_SCHEMA_ENGINE_BINARY names a file;
// pointing it at node itself lets generate work where that download cannot.
import { spawnSync } from "node:child_process";
import { createRequire } from "node:module";

const require = createRequire(import.meta.url);
const cli = require.resolve("prisma/build/index.js");
const env = { ...process.env };
env.PRISMA_SCHEMA_ENGINE_BINARY ??= process.execPath;
env.PRISMA_HIDE_UPDATE_MESSAGE = "1";
const result = spawnSync(process.execPath, [cli, "generate"], { stdio: "inherit", env });
process.exit(result.status ?? 1);
