import "./boot/load-env.js";
import { buildApp } from "./server/app.js";
import { createVerifier, randomDevSecret, signHs256 } from "./auth/verifier.js";
import { assistantFromConfig } from "./boot/assistant-from-config.js";
import { createDb } from "./db/client.js";
import { openDatabase } from "./db/open.js";
import { createLogger } from "./lib/logger.js";
import { assertCanListen } from "./boot/port-check.js";
import { exitOnStartupError, ListenError, loadConfigOrExit } from "./boot/startup-errors.js";
import { ensureWebBuild, WEB_DIST_DIR } from "./server/web-ui/build.js";

const config = loadConfigOrExit();

const logger = createLogger(config.logLevel);
await assertCanListen(config.port, config.host).catch((error: unknown) => exitOnStartupError(error, logger));
if (config.webUi) {
  // Cached: only a change to web/ or schema.graphql since the last build (at install, or an earlier start) builds again.
  await ensureWebBuild((line) => logger.info(line)).catch((error: unknown) => {
    logger.error({ err: error }, "could not build the web client; / answers 503 until it is built (npm run web:build)");
  });
}
const database = await openDatabase(config.database, logger).catch((error: unknown) => exitOnStartupError(error, logger));
const db = createDb({
  url: database.url,
  driver: config.database.driver,
  poolSize: config.database.poolSize,
  connectionTimeoutMs: config.database.connectionTimeoutMs,
  statementTimeoutMs: config.database.statementTimeoutMs,
});

let auth = config.auth;
let devToken: string | undefined;
if (auth.jwtSecret === undefined && auth.jwksUrl === undefined) {
  // loadConfig refuses this in production; in development a per-process secret is made.
  auth = { ...auth, jwtSecret: randomDevSecret() };
  devToken = await signHs256(auth.jwtSecret as string, { sub: "dev-user", expiresIn: "12h" });
}

if (config.cohere.apiKey === undefined) {
  logger.warn("COHERE_API_KEY is not set: sendMessage answers ASSISTANT_UNAVAILABLE; everything else works");
}

const app = buildApp({
  db,
  logger,
  listenUrl: database.directUrl,
  assistant: assistantFromConfig(config, logger),
  verifier: createVerifier(auth),
  http: config.http,
  shutdownGraceMs: config.shutdownGraceMs,
  realtime: { subscriptionsPerUser: config.realtime.subscriptionsPerUser },
  transport: config.realtime.transport,
  ws: config.ws,
  graphiql: config.isProduction ? false : { devHeaders: devToken ? { Authorization: `Bearer ${devToken}` } : undefined },
  webUi: config.webUi ? { distDir: WEB_DIST_DIR, devToken } : false,
});
const { url } = await app.start(config.port, config.host).catch(async (cause: unknown) => {
  // The database is open by now: close it, so an embedded Postgres does not outlive us.
  await app.stop().catch(() => {});
  await db.$disconnect().catch(() => {});
  await database.close().catch(() => {});
  return exitOnStartupError(new ListenError(config.port, config.host, { cause }), logger);
});
logger.info({ endpoint: url }, `GraphQL API ready at ${url}`);
if (config.webUi) logger.info(`Web client at ${new URL("/", url).href}`);
if (devToken) {
  // Printed, not logged: it is a convenience for this process only, signed with a secret that dies with it.
  process.stdout.write(
    `\nNo AUTH_JWT_SECRET or AUTH_JWKS_URL set: using a random per-process secret.\n` +
      `Dev token for user "dev-user" (valid 12h; ${config.webUi ? `GraphiQL at ${url} and the web client at ${new URL("/", url).href} already send it` : `GraphiQL at ${url} already sends it`}):\n\n` +
      `  Authorization: Bearer ${devToken}\n\n`,
  );
}

/**
 * The same signal arrives more than once when a terminal signals the whole process group
 * and npm or tsx relay it too; only a signal sent again after this long means "now".
 */
const RELAYED_SIGNAL_MS = 1000;
let stoppingSince: number | undefined;

/**
 * Drain (see App.stop), then the database pool, then the embedded Postgres, in that order,
 * so nothing in flight meets a closed connection. A second signal exits at once with 1.
 */
async function shutdown(signal: string): Promise<void> {
  if (stoppingSince !== undefined) {
    if (Date.now() - stoppingSince < RELAYED_SIGNAL_MS) return;
    logger.warn({ signal }, "second signal: exiting now, without draining");
    process.exit(1);
  }
  stoppingSince = Date.now();
  logger.info({ signal, graceMs: config.shutdownGraceMs }, "shutting down: draining");
  try {
    const drained = await app.stop();
    await db.$disconnect();
    await database.close();
    logger.info({ drained }, "stopped");
    process.exit(0);
  } catch (error) {
    logger.error({ err: error }, "error while shutting down");
    process.exit(1);
  }
}
process.on("SIGINT", () => void shutdown("SIGINT"));
process.on("SIGTERM", () => void shutdown("SIGTERM"));
// A closed terminal: without this the process would die and leave the embedded Postgres running.
process.on("SIGHUP", () => void shutdown("SIGHUP"));
