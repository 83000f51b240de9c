import "../src/boot/load-env.js";
import { openDatabase } from "../src/db/open.js";
import { createLogger } from "../src/lib/logger.js";
import { exitOnStartupError, loadConfigOrExit } from "../src/boot/startup-errors.js";

// `npm run db:migrate`: applies prisma/migrations to DIRECT_URL (or DATABASE_URL,
// or the embedded database) and exits. The server also does this at start.
const config = loadConfigOrExit();
const logger = createLogger(config.logLevel);
const database = await openDatabase(config.database, logger).catch((error: unknown) => exitOnStartupError(error, logger));
await database.close();
