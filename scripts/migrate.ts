import "../src/load-env.js";
import { loadConfig, type Config } from "../src/config.js";
import { openDatabase } from "../src/db/open.js";
import { createLogger } from "../src/logger.js";
import { exitOnStartupError } from "../src/startup-errors.js";

// `npm run db:migrate`: applies prisma/migrations to DIRECT_URL (or DATABASE_URL,
// or the embedded database) and exits. The server also does this at start.
let config: Config;
try {
  config = loadConfig();
} catch (error) {
  exitOnStartupError(error);
}
const logger = createLogger(config.logLevel);
const database = await openDatabase(config.database, logger).catch((error: unknown) => exitOnStartupError(error, logger));
await database.close();
