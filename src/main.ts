import "./boot/load-env.js";
import { createLifecycle } from "./boot/signals.js";
import { assertCanListen } from "./boot/port-check.js";
import { exitOnStartupError, loadConfigOrExit } from "./boot/startup-errors.js";
import { openDatabase } from "./db/open.js";
import { createLogger } from "./lib/logger.js";

// `npm start` runs the compiled form of this file (dist/main.js); `npm run dev` runs it with tsx.
// Nothing is built or type-checked here: dist/ and web/dist are built at install, or before
// `npm start` when stale (scripts/build.mjs).

const config = loadConfigOrExit();
const logger = createLogger(config.logLevel);
// Before anything starts: from here on a signal stops whatever has started, in order.
const lifecycle = createLifecycle(logger, config.shutdownGraceMs);
await assertCanListen(config.port, config.host).catch((error: unknown) => exitOnStartupError(error, logger));

// The API's modules (most of a start's work) load while the database gets ready: an embedded
// Postgres boots on another core once spawned; an external one is checked for migrations.
let api: Promise<typeof import("./boot/start-api.js")> | undefined;
const loadApi = () => {
  api ??= import("./boot/start-api.js");
  // Awaited below; a failed load must not count as unhandled until then.
  api.catch(() => {});
  return api;
};
const opening = openDatabase(config.database, logger, loadApi);
if (config.database.url !== undefined) loadApi();
const database = await opening.catch((error: unknown) => exitOnStartupError(error, logger));
const { startApi } = await loadApi().catch((error: unknown) => exitOnStartupError(error, logger));
logger.debug("API modules loaded");
// Registered first, so stopped last: after the drain, when every turn has persisted.
lifecycle.onStop("database", () => database.close());
await lifecycle.proceed();
await startApi({ config, logger, database, lifecycle }).catch((error: unknown) => lifecycle.abort(error));
lifecycle.started();
