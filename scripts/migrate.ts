import { loadConfig } from "../src/config.js";
import { openDatabase } from "../src/db/open.js";
import { createLogger } from "../src/logger.js";

// `npm run db:migrate`: applies prisma/migrations to DIRECT_URL (or DATABASE_URL,
// or the embedded database) and exits. The server also does this at start.
const config = loadConfig();
const database = await openDatabase(config.database, createLogger(config.logLevel));
await database.close();
