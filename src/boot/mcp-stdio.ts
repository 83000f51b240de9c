import "./load-env.js";
import { StdioServerTransport } from "@modelcontextprotocol/sdk/server/stdio.js";
import { pino } from "pino";
import { createVerifier } from "../auth/verifier.js";
import { ConfigError, loadConfig } from "./config.js";
import { closeDb, createDb } from "../db/client.js";
import { openDatabase } from "../db/open.js";
import { createLogger, type Logger } from "../lib/logger.js";
import { exitOnStartupError } from "./startup-errors.js";
import { createMcpServer } from "../mcp/server.js";

// `npm run mcp`: the task tools over stdio for desktop assistants and IDE
// agents. stdout carries the protocol, so logs go to stderr. The user is the
// `sub` of MCP_AUTH_TOKEN, verified like any other token.

let logger: Logger | undefined;

async function main(): Promise<void> {
  const config = loadConfig();
  logger = createLogger(config.logLevel, pino.destination(2));
  const token = config.mcp.authToken;
  if (!token) throw new ConfigError("MCP_AUTH_TOKEN must be set to a JWT for the user whose tasks this server manages");
  if (config.auth.jwtSecret === undefined && config.auth.jwksUrl === undefined) {
    throw new ConfigError("Set AUTH_JWT_SECRET or AUTH_JWKS_URL so MCP_AUTH_TOKEN can be verified");
  }
  const { userId } = await createVerifier(config.auth)
    .verify(token)
    .catch((error: unknown) => {
      throw new ConfigError(`MCP_AUTH_TOKEN was rejected: ${error instanceof Error ? error.message : String(error)}`);
    });
  const database = await openDatabase(config.database, logger);
  const db = createDb({
    url: database.url,
    driver: config.database.driver,
    poolSize: Math.min(config.database.poolSize, 3),
    connectionTimeoutMs: config.database.connectionTimeoutMs,
  });
  const server = createMcpServer({ db, userId, logger });
  const transport = new StdioServerTransport();
  // Once: server.close() closes the transport, whose onclose calls this again.
  let stopping = false;
  const shutdown = async () => {
    if (stopping) return;
    stopping = true;
    await server.close();
    await closeDb(db);
    await database.close();
    process.exit(0);
  };
  transport.onclose = () => void shutdown();
  // A client ends the session by closing our stdin; the SDK transport does not watch for that.
  process.stdin.once("end", () => void shutdown());
  process.on("SIGINT", () => void shutdown());
  process.on("SIGTERM", () => void shutdown());
  process.on("SIGHUP", () => void shutdown());
  await server.connect(transport);
  logger.info("MCP server ready on stdio");
}

main().catch((error: unknown) => exitOnStartupError(error, logger));
