import { pino } from "pino";
import { inject } from "vitest";
import { buildApp, type App, type AppDeps } from "../../src/server/app.js";
import type { AssistantDeps } from "../../src/chat/turn-run.js";
import { closeDb, type Db } from "../../src/db/client.js";
import { loadConfig, type HttpSettings } from "../../src/boot/config.js";
import { createLogger, type Logger } from "../../src/lib/logger.js";
import type { TransportSettings } from "../../src/realtime/transport.js";
import { databaseUrl, newUserId, testDb } from "./db.js";
import { TEST_JWT_SECRET, testVerifier, tokenFor } from "./tokens.js";

export interface GraphQLResponse<T = Record<string, any>> {
  status: number;
  data?: T | null;
  errors?: { message: string; path?: (string | number)[]; extensions?: Record<string, any> }[];
}

export interface TestServer {
  app: App;
  db: Db;
  url: string;
  baseUrl: string;
  /** ws://…/graphql for graphql-ws clients. */
  wsUrl: string;
  /** http://…/metrics on the metrics listener, when the app has metrics and their port could be bound. */
  metricsUrl: string | undefined;
  /** POSTs an operation, with `token` as the Bearer (omit for none). */
  request<T = Record<string, any>>(query: string, variables?: Record<string, unknown>, token?: string | null): Promise<GraphQLResponse<T>>;
  close(): Promise<void>;
}

export interface TestUser {
  id: string;
  token: string;
  /** request() as this user. */
  gql<T = Record<string, any>>(query: string, variables?: Record<string, unknown>): Promise<GraphQLResponse<T>>;
}

/** A real HTTP server on a loopback port of its own, on the run's test database. */
export async function startTestServer(options: Partial<AppDeps> & { logger?: Logger; port?: number } = {}): Promise<TestServer> {
  const ownDb = options.db === undefined;
  const db = options.db ?? testDb();
  const logger = options.logger ?? createLogger("silent");
  const app = buildApp({
    db,
    logger,
    listenUrl: options.listenUrl ?? databaseUrl(),
    transport: options.transport ?? runTransport(),
    listener: options.listener ?? { heartbeatIntervalMs: 500, heartbeatTimeoutMs: 1000, backoff: { initialMs: 50, maxMs: 500 } },
    assistant: options.assistant ?? testAssistant({ logger }),
    verifier: options.verifier ?? testVerifier(),
    graphiql: options.graphiql ?? false,
    http: options.http ?? developmentHttp(),
    shutdownGraceMs: options.shutdownGraceMs ?? 5000,
    realtime: options.realtime,
    ws: options.ws,
    webUi: options.webUi ?? false,
    readyTimeoutMs: options.readyTimeoutMs,
    metrics: options.metrics,
    tracing: options.tracing,
    operations: options.operations,
  });
  // A given port: a restart on the address clients already use.
  const { port, metricsPort, startupSwept } = await app.start(options.port ?? 0, "127.0.0.1");
  // Tests that count statements start counting after the one a start issues on its own.
  await startupSwept;
  const baseUrl = `http://127.0.0.1:${port}`;
  const url = `${baseUrl}/graphql`;
  return {
    app,
    db,
    url,
    baseUrl,
    wsUrl: `ws://127.0.0.1:${port}/graphql`,
    metricsUrl: metricsPort === undefined ? undefined : `http://127.0.0.1:${metricsPort}/metrics`,
    async request(query, variables, token) {
      const headers: Record<string, string> = { "content-type": "application/json", accept: "application/graphql-response+json" };
      if (token) headers.authorization = `Bearer ${token}`;
      const response = await fetch(url, { method: "POST", headers, body: JSON.stringify({ query, variables }) });
      const body = (await response.json()) as GraphQLResponse;
      return { ...body, status: response.status } as never;
    },
    async close() {
      await app.stop();
      if (ownDb) await closeDb(db);
    },
  };
}

/**
 * The transport test servers use unless a test says otherwise: postgres, or
 * nats on the run's nats-server when the run has REALTIME_TRANSPORT=nats
 * (tests/helpers/global-setup.ts), so the same suites cover both.
 */
export function runTransport(): TransportSettings {
  if (process.env.REALTIME_TRANSPORT !== "nats") return { kind: "postgres" };
  return { kind: "nats", servers: [inject("natsUrl")], subjectPrefix: "todo.test" };
}

/** True in a run with REALTIME_TRANSPORT=nats: tests of the LISTEN connection itself are skipped there. */
export function onNatsTransport(): boolean {
  return runTransport().kind === "nats";
}

export async function newUser(server: TestServer, label?: string): Promise<TestUser> {
  const id = newUserId(label);
  const token = await tokenFor(id);
  return { id, token, gql: (query, variables) => server.request(query, variables, token) };
}

/** Chat settings for tests: no model unless one is given (COHERE_API_KEY unset), short bounds. */
export function testAssistant(overrides: Partial<AssistantDeps> = {}): AssistantDeps {
  return {
    model: undefined,
    modelName: "command-a-03-2025",
    maxSteps: 8,
    callTimeoutMs: 5000,
    turnTimeoutMs: 20_000,
    clock: () => new Date(),
    logger: createLogger("silent"),
    retryPolicy: { initialMs: 10, maxMs: 100, maxRetries: 3 },
    ...overrides,
  };
}

/** A logger that keeps every line, for asserting what is (not) logged. */
export function capturingLogger(): { logger: Logger; lines: string[] } {
  const lines: string[] = [];
  const logger = createLogger("trace", { write: (line: string) => void lines.push(line) } as pino.DestinationStream);
  return { logger, lines };
}

/** The HTTP settings `npm start` has with an empty environment (development). */
export function developmentHttp(overrides: Partial<HttpSettings> = {}): HttpSettings {
  return { ...loadConfig({}).http, ...overrides };
}

/** The HTTP settings of NODE_ENV=production. */
export function productionHttp(overrides: Partial<HttpSettings> = {}): HttpSettings {
  return { ...loadConfig({ NODE_ENV: "production", AUTH_JWT_SECRET: TEST_JWT_SECRET }).http, ...overrides };
}
