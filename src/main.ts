import { existsSync } from "node:fs";
import { buildApp } from "./app.js";
import { createVerifier, randomDevSecret, signHs256 } from "./auth.js";
import { createCohereModel } from "./chat/cohere.js";
import { ConfigError, loadConfig } from "./config.js";
import { createDb } from "./db/client.js";
import { openDatabase } from "./db/open.js";
import { createLogger } from "./logger.js";

// A local .env is a convenience; variables already in the environment win.
if (existsSync(".env")) process.loadEnvFile(".env");

let config;
try {
  config = loadConfig();
} catch (error) {
  if (!(error instanceof ConfigError)) throw error;
  process.stderr.write(`Invalid configuration:\n${error.message}\n`);
  process.exit(1);
}

const logger = createLogger(config.logLevel);
const database = await openDatabase(config.database, logger);
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
  assistant: {
    model: config.cohere.apiKey === undefined ? undefined : createCohereModel({ apiKey: config.cohere.apiKey, baseUrl: config.cohere.baseUrl }),
    modelName: config.cohere.model,
    maxSteps: config.cohere.maxSteps,
    callTimeoutMs: config.cohere.timeoutMs,
    turnTimeoutMs: config.cohere.turnTimeoutMs,
    clock: () => new Date(),
    logger,
    rateLimit: config.chat.rateLimitPerMinute === 0 ? undefined : { perMinute: config.chat.rateLimitPerMinute, burst: config.chat.rateBurst },
  },
  verifier: createVerifier(auth),
  http: config.http,
  realtime: { subscriptionsPerUser: config.realtime.subscriptionsPerUser },
  graphiql: config.isProduction ? false : { devHeaders: devToken ? { Authorization: `Bearer ${devToken}` } : undefined },
});
const { url } = await app.start(config.port);
logger.info({ endpoint: url }, `GraphQL API ready at ${url}`);
if (devToken) {
  // Printed, not logged: it is a convenience for this process only, signed with a secret that dies with it.
  process.stdout.write(
    `\nNo AUTH_JWT_SECRET or AUTH_JWKS_URL set: using a random per-process secret.\n` +
      `Dev token for user "dev-user" (valid 12h; GraphiQL at ${url} already sends it):\n\n` +
      `  Authorization: Bearer ${devToken}\n\n`,
  );
}

let stopping = false;
async function shutdown(signal: string): Promise<void> {
  if (stopping) return;
  stopping = true;
  logger.info({ signal }, "shutting down");
  try {
    await app.stop();
    await db.$disconnect();
    await database.close();
    process.exit(0);
  } catch (error) {
    logger.error({ err: error }, "error while shutting down");
    process.exit(1);
  }
}
process.on("SIGINT", () => void shutdown("SIGINT"));
process.on("SIGTERM", () => void shutdown("SIGTERM"));
