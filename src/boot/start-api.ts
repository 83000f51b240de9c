import { readFile } from "node:fs/promises";
import { createVerifier, randomDevSecret, signHs256 } from "../auth/verifier.js";
import type { AuthSettings } from "../auth/verifier.js";
import { closeDb, createDb } from "../db/client.js";
import type { OpenDatabase } from "../db/open.js";
import type { Logger } from "../lib/logger.js";
import type { Tracing } from "../lib/tracing.js";
import { buildApp, type AppDeps } from "../server/app.js";
import { WEB_DIST_DIR } from "../server/web-ui/paths.js";
import { assistantFromConfig } from "./assistant-from-config.js";
import type { Config } from "./config.js";
import type { Lifecycle } from "./signals.js";
import { ListenError } from "./startup-errors.js";

// The API proper, wired from the configuration. src/main.ts imports this module
// while the database opens: it is the larger part of a start's module loading.

export interface StartApiOptions {
  config: Config;
  logger: Logger;
  database: OpenDatabase;
  lifecycle: Lifecycle;
}

/** With no AUTH_* setting (refused in production), a per-process secret and a dev token signed with it. */
async function authWithDevToken(auth: AuthSettings): Promise<{ auth: AuthSettings; devToken?: string }> {
  if (auth.jwtSecret !== undefined || auth.jwksUrl !== undefined) return { auth };
  const jwtSecret = randomDevSecret();
  return { auth: { ...auth, jwtSecret }, devToken: await signHs256(jwtSecret, { sub: "dev-user", expiresIn: "12h" }) };
}

/**
 * Traces (OTEL_EXPORTER_OTLP_ENDPOINT): the OpenTelemetry SDK is loaded only then. Stopped after
 * the API and the pool (registered before them), so the drain's last spans are exported.
 */
async function tracingFromConfig(config: Config, logger: Logger, lifecycle: Lifecycle): Promise<Tracing | undefined> {
  const { endpoint, protocol, serviceName } = config.tracing;
  if (endpoint === undefined) return undefined;
  const { startTracing } = await import("../telemetry/tracing.js");
  const handle = await startTracing({ endpoint, protocol, serviceName, logger });
  lifecycle.onStop("traces", () => handle.shutdown());
  return handle.tracing;
}

/** Metrics (METRICS_PORT): prom-client is loaded only then. */
async function metricsFromConfig(config: Config): Promise<AppDeps["metrics"]> {
  if (config.metrics === undefined) return undefined;
  const { AppMetrics } = await import("../telemetry/metrics.js");
  return { ...config.metrics, create: (sources) => new AppMetrics(sources) };
}

/** Builds the app on `database`, registers its shutdown steps and listens; resolves with the API's URL. */
export async function startApi({ config, logger, database, lifecycle }: StartApiOptions): Promise<string> {
  const [tracing, metrics] = await Promise.all([tracingFromConfig(config, logger, lifecycle), metricsFromConfig(config)]);
  const db = createDb({
    url: database.url,
    driver: config.database.driver,
    poolSize: config.database.poolSize,
    connectionTimeoutMs: config.database.connectionTimeoutMs,
    statementTimeoutMs: config.database.statementTimeoutMs,
  });
  lifecycle.onStop("database pool", () => closeDb(db));
  const { auth, devToken } = await authWithDevToken(config.auth);
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
    metrics,
    tracing,
    operations: {
      allowArbitrary: config.operations.allowArbitrary,
      manifests: config.operations.trustedDocumentsFile === undefined ? [] : [await readManifest(config.operations.trustedDocumentsFile)],
    },
  });
  logger.debug("app built");
  lifecycle.onStop("API", async () => {
    const drained = await app.stop();
    logger.info({ drained }, drained ? "drained" : "drained, with what outlived the grace period interrupted");
  });
  await lifecycle.proceed();
  const { url } = await app
    .start(config.port, config.host)
    .catch((cause: unknown) => lifecycle.abort(new ListenError(config.port, config.host, { cause })));
  logger.info({ endpoint: url }, `GraphQL API ready at ${url}`);
  if (config.webUi) logger.info(`Web client at ${new URL("/", url).href}`);
  if (devToken) printDevToken(devToken, url, config.webUi);
  return url;
}

/** TRUSTED_DOCUMENTS_FILE: `{ hash: text }`; a file that cannot be read or is not such an object stops the start. */
async function readManifest(file: string): Promise<Record<string, string>> {
  const parsed: unknown = JSON.parse(await readFile(file, "utf8"));
  const valid =
    parsed !== null && typeof parsed === "object" && !Array.isArray(parsed) && Object.values(parsed).every((text) => typeof text === "string");
  if (!valid) throw new Error(`TRUSTED_DOCUMENTS_FILE ${file}: expected a JSON object of sha256 hash → document text`);
  return parsed as Record<string, string>;
}

/** Printed, not logged: a convenience for this process only, signed with a secret that dies with it. */
function printDevToken(devToken: string, url: string, webUi: boolean): void {
  const where = webUi ? `GraphiQL at ${url} and the web client at ${new URL("/", url).href} already send it` : `GraphiQL at ${url} already sends it`;
  process.stdout.write(
    `\nNo AUTH_JWT_SECRET or AUTH_JWKS_URL set: using a random per-process secret.\n` +
      `Dev token for user "dev-user" (valid 12h; ${where}):\n\n` +
      `  Authorization: Bearer ${devToken}\n\n`,
  );
}
