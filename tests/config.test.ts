import { execFile } from "node:child_process";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { ConfigError, loadConfig, webUiWanted } from "../src/boot/config.js";
import { defaultMaxConnections, leavesFdHeadroom } from "../src/server/ws/fd-limit.js";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const SECRET = "s".repeat(32);

function configError(env: NodeJS.ProcessEnv): ConfigError {
  try {
    loadConfig(env);
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    return error as ConfigError;
  }
  throw new Error(`loadConfig accepted ${JSON.stringify(env)}`);
}

describe("loadConfig", () => {
  it("should use the defaults for an empty environment", () => {
    const config = loadConfig({});
    expect(config.nodeEnv).toBe("development");
    expect(config.isProduction).toBe(false);
    expect(config.port).toBe(4000);
    expect(config.host).toBe("127.0.0.1");
    expect(config.logLevel).toBe("info");
    expect(config.database).toEqual({
      url: undefined,
      directUrl: undefined,
      embeddedDataDir: ".data/postgres",
      driver: "pg",
      poolSize: 10,
      connectionTimeoutMs: 5000,
      statementTimeoutMs: 10_000,
    });
    expect(config.http).toEqual({
      maxBodyBytes: 1024 * 1024,
      corsOrigins: [],
      introspection: true,
      suggestions: true,
      limits: { depth: 10, aliases: 15, tokens: 1000, directives: 50, cost: 5000 },
      timeouts: { requestMs: 30_000, headersMs: 10_000, keepAliveMs: 5000 },
    });
    expect(config.auth).toStrictEqual({
      jwtSecret: undefined,
      jwksUrl: undefined,
      issuer: undefined,
      audience: undefined,
      maxTokenAgeSeconds: undefined,
    });
    expect(config.cohere.model).toBe("command-a-03-2025");
    expect(config.cohere.apiKey).toBeUndefined();
    expect(config.chat).toEqual({
      rateLimitPerMinute: 20,
      rateBurst: 5,
      streamFlushMs: 100,
      maxToolCallsPerStep: 16,
      maxAnswerChars: 20_000,
      approval: "destructive",
      approvalTtlSeconds: 900,
    });
    expect(config.cohere.maxInputTokens).toBe(100_000);
    expect(config.realtime).toEqual({ subscriptionsPerUser: 50, transport: { kind: "postgres" } });
    expect(config.ws).toStrictEqual({
      connectionsPerUser: 30,
      maxConnections: undefined,
      unauthenticatedPerAddress: 256,
      operationsPerSocket: 16,
      maxBufferedBytes: 8 * 1024 * 1024,
      keepAliveMs: 12_000,
    });
  });

  it("should treat empty and blank settings as unset", () => {
    const config = loadConfig({ PORT: "", DATABASE_URL: "  ", DATABASE_POOL_SIZE: "", COHERE_MODEL: " " });
    expect(config.port).toBe(4000);
    expect(config.database.url).toBeUndefined();
    expect(config.database.poolSize).toBe(10);
    expect(config.cohere.model).toBe("command-a-03-2025");
  });

  it("should accept a valid port, including 0", () => {
    expect(loadConfig({ PORT: "8080" }).port).toBe(8080);
    expect(loadConfig({ PORT: " 65535 " }).port).toBe(65535);
    expect(loadConfig({ PORT: "0" }).port).toBe(0);
  });

  it("should refuse a PORT that is not a port number", () => {
    for (const PORT of ["abc", "-1", "65536", "80.5", "1e3", "0x50"]) {
      expect(configError({ PORT }).message).toContain("PORT must be a port number");
    }
  });

  it("should listen on loopback by default in development and on every interface in production", () => {
    expect(loadConfig({}).host).toBe("127.0.0.1");
    expect(loadConfig({ NODE_ENV: "development", HOST: "" }).host).toBe("127.0.0.1");
    expect(loadConfig({ NODE_ENV: "production", AUTH_JWT_SECRET: SECRET }).host).toBe("0.0.0.0");
  });

  it("should accept a HOST that is an IP address or a host name, in any environment", () => {
    for (const HOST of ["0.0.0.0", "127.0.0.1", "::", "::1", "fe80::1", "localhost", "api.internal", "my-host-1.example.com"]) {
      expect(loadConfig({ HOST }).host).toBe(HOST);
    }
    expect(loadConfig({ HOST: " 10.0.0.5 " }).host).toBe("10.0.0.5");
    expect(loadConfig({ NODE_ENV: "production", AUTH_JWT_SECRET: SECRET, HOST: "127.0.0.1" }).host).toBe("127.0.0.1");
  });

  it("should refuse a HOST that is neither an IP address nor a host name", () => {
    for (const HOST of ["http://0.0.0.0", "0.0.0.0:4000", "local host", "-bad.example.com", "bad-.example.com", "a..b", "[::1]", "x".repeat(64)]) {
      expect(configError({ HOST }).message).toBe(
        `HOST must be an IP address or a host name (e.g. 127.0.0.1, 0.0.0.0, ::, localhost), got ${JSON.stringify(HOST)}`,
      );
    }
  });

  it("should refuse a bad DATABASE_POOL_SIZE", () => {
    for (const DATABASE_POOL_SIZE of ["0", "abc", "-5", "2.5", "1001"]) {
      const error = configError({ DATABASE_POOL_SIZE });
      expect(error.message).toContain("DATABASE_POOL_SIZE must be an integer");
      expect(error.message).toContain(`"${DATABASE_POOL_SIZE}"`);
    }
    expect(loadConfig({ DATABASE_POOL_SIZE: "25" }).database.poolSize).toBe(25);
  });

  it("should read the chat rate limit, with 0 turning it off", () => {
    expect(loadConfig({ CHAT_RATE_LIMIT: "120", CHAT_RATE_BURST: "10" }).chat).toMatchObject({ rateLimitPerMinute: 120, rateBurst: 10 });
    expect(loadConfig({ CHAT_RATE_LIMIT: "0" }).chat).toMatchObject({ rateLimitPerMinute: 0, rateBurst: 5 });
    expect(loadConfig({ CHAT_RATE_LIMIT: " ", CHAT_RATE_BURST: "" }).chat).toMatchObject({ rateLimitPerMinute: 20, rateBurst: 5 });
  });

  it("should read STREAM_FLUSH_MS and COHERE_MAX_INPUT_TOKENS", () => {
    expect(loadConfig({ STREAM_FLUSH_MS: "25" }).chat.streamFlushMs).toBe(25);
    expect(loadConfig({ STREAM_FLUSH_MS: " " }).chat.streamFlushMs).toBe(100);
    expect(loadConfig({ COHERE_MAX_INPUT_TOKENS: "8000" }).cohere.maxInputTokens).toBe(8000);
  });

  it("should refuse a bad STREAM_FLUSH_MS or COHERE_MAX_INPUT_TOKENS, naming the setting and the value", () => {
    for (const STREAM_FLUSH_MS of ["0", "9", "abc", "-5", "2.5", "10001"]) {
      const error = configError({ STREAM_FLUSH_MS });
      expect(error.message).toContain("STREAM_FLUSH_MS must be an integer (10–10000)");
      expect(error.message).toContain(`"${STREAM_FLUSH_MS}"`);
    }
    for (const COHERE_MAX_INPUT_TOKENS of ["0", "999", "many", "10000001"]) {
      const error = configError({ COHERE_MAX_INPUT_TOKENS });
      expect(error.message).toContain("COHERE_MAX_INPUT_TOKENS must be an integer (1000–10000000)");
      expect(error.message).toContain(`"${COHERE_MAX_INPUT_TOKENS}"`);
    }
  });

  it("should read CHAT_MAX_TOOL_CALLS_PER_STEP and CHAT_MAX_ANSWER_CHARS", () => {
    const config = loadConfig({ CHAT_MAX_TOOL_CALLS_PER_STEP: "4", CHAT_MAX_ANSWER_CHARS: "5000" });
    expect(config.chat).toMatchObject({ maxToolCallsPerStep: 4, maxAnswerChars: 5000 });
  });

  it("should refuse a bad CHAT_MAX_TOOL_CALLS_PER_STEP or CHAT_MAX_ANSWER_CHARS, naming the setting and the value", () => {
    for (const CHAT_MAX_TOOL_CALLS_PER_STEP of ["0", "1001", "many", "-1"]) {
      const error = configError({ CHAT_MAX_TOOL_CALLS_PER_STEP });
      expect(error.message).toContain("CHAT_MAX_TOOL_CALLS_PER_STEP must be an integer (1–1000)");
      expect(error.message).toContain(`"${CHAT_MAX_TOOL_CALLS_PER_STEP}"`);
    }
    for (const CHAT_MAX_ANSWER_CHARS of ["99", "1000001", "2.5"]) {
      const error = configError({ CHAT_MAX_ANSWER_CHARS });
      expect(error.message).toContain("CHAT_MAX_ANSWER_CHARS must be an integer (100–1000000)");
      expect(error.message).toContain(`"${CHAT_MAX_ANSWER_CHARS}"`);
    }
  });

  it("should read CHAT_APPROVAL and CHAT_APPROVAL_TTL, with or without a unit", () => {
    for (const policy of ["destructive", "all", "none"] as const) expect(loadConfig({ CHAT_APPROVAL: policy }).chat.approval).toBe(policy);
    expect(loadConfig({ CHAT_APPROVAL_TTL: "90" }).chat.approvalTtlSeconds).toBe(90);
    expect(loadConfig({ CHAT_APPROVAL_TTL: "30m" }).chat.approvalTtlSeconds).toBe(1800);
    expect(loadConfig({ CHAT_APPROVAL_TTL: "7d" }).chat.approvalTtlSeconds).toBe(7 * 86_400);
  });

  it("should refuse a bad CHAT_APPROVAL or CHAT_APPROVAL_TTL, naming the setting and the value", () => {
    for (const CHAT_APPROVAL of ["destructve", "ALL", "yes"]) {
      expect(configError({ CHAT_APPROVAL }).message).toBe(`CHAT_APPROVAL must be one of destructive, all, none, got "${CHAT_APPROVAL}"`);
    }
    for (const CHAT_APPROVAL_TTL of ["0", "8d", "15 minutes", "-1"]) {
      const error = configError({ CHAT_APPROVAL_TTL });
      expect(error.message).toContain("CHAT_APPROVAL_TTL must be a duration from 1 second to 7 days");
      expect(error.message).toContain(`"${CHAT_APPROVAL_TTL}"`);
    }
  });

  it("should refuse a bad CHAT_RATE_LIMIT or CHAT_RATE_BURST", () => {
    for (const CHAT_RATE_LIMIT of ["abc", "-1", "2.5", "100001"]) {
      const error = configError({ CHAT_RATE_LIMIT });
      expect(error.message).toContain("CHAT_RATE_LIMIT must be an integer (0–100000)");
      expect(error.message).toContain(`"${CHAT_RATE_LIMIT}"`);
    }
    // A burst of 0 would refuse every message: turning the limit off is CHAT_RATE_LIMIT=0.
    for (const CHAT_RATE_BURST of ["0", "abc", "-1", "1.5", "10001"]) {
      const error = configError({ CHAT_RATE_BURST });
      expect(error.message).toContain("CHAT_RATE_BURST must be an integer (1–10000)");
      expect(error.message).toContain(`"${CHAT_RATE_BURST}"`);
    }
  });

  it("should read SUBSCRIPTIONS_PER_USER and refuse a bad one", () => {
    expect(loadConfig({ SUBSCRIPTIONS_PER_USER: "200" }).realtime).toEqual({ subscriptionsPerUser: 200, transport: { kind: "postgres" } });
    expect(loadConfig({ SUBSCRIPTIONS_PER_USER: " " }).realtime).toEqual({ subscriptionsPerUser: 50, transport: { kind: "postgres" } });
    // 0 would refuse every subscription; there is no "off".
    for (const SUBSCRIPTIONS_PER_USER of ["0", "abc", "-1", "1.5", "10001"]) {
      const error = configError({ SUBSCRIPTIONS_PER_USER });
      expect(error.message).toContain("SUBSCRIPTIONS_PER_USER must be an integer (1–10000)");
      expect(error.message).toContain(`"${SUBSCRIPTIONS_PER_USER}"`);
    }
  });

  it("should read REALTIME_TRANSPORT with NATS_URL and NATS_SUBJECT_PREFIX, and refuse bad ones, naming the setting and the value", () => {
    expect(loadConfig({}).realtime.transport).toEqual({ kind: "postgres" });
    // The NATS settings mean nothing on the default transport.
    expect(loadConfig({ REALTIME_TRANSPORT: "postgres", NATS_URL: "nats://nats.internal:4222" }).realtime.transport).toEqual({ kind: "postgres" });
    expect(loadConfig({ REALTIME_TRANSPORT: "nats" }).realtime.transport).toEqual({
      kind: "nats",
      servers: ["nats://127.0.0.1:4222"],
      subjectPrefix: "todo.realtime",
    });
    expect(
      loadConfig({
        REALTIME_TRANSPORT: "nats",
        NATS_URL: " nats://a.internal:4222, tls://b.internal:4222 ,c.internal:4223",
        NATS_SUBJECT_PREFIX: "acme.todo-prod",
      }).realtime.transport,
    ).toEqual({ kind: "nats", servers: ["nats://a.internal:4222", "tls://b.internal:4222", "c.internal:4223"], subjectPrefix: "acme.todo-prod" });
    const bad: [Record<string, string>, string][] = [
      [{ REALTIME_TRANSPORT: "redis" }, 'REALTIME_TRANSPORT must be one of postgres, nats, got "redis"'],
      [
        { REALTIME_TRANSPORT: "nats", NATS_URL: "http://nats.internal" },
        'NATS_URL must list servers like nats://host:4222; "http://nats.internal" is not one',
      ],
      [{ REALTIME_TRANSPORT: "nats", NATS_URL: "nats://" }, 'NATS_URL must list servers like nats://host:4222; "nats://" is not one'],
      [{ REALTIME_TRANSPORT: "nats", NATS_SUBJECT_PREFIX: "todo.>" }, "NATS_SUBJECT_PREFIX must be dot-separated tokens"],
      [{ REALTIME_TRANSPORT: "nats", NATS_SUBJECT_PREFIX: "todo..rt" }, '"todo..rt"'],
      [{ REALTIME_TRANSPORT: "nats", NATS_SUBJECT_PREFIX: "todo rt" }, '"todo rt"'],
    ];
    for (const [env, message] of bad) expect(configError(env).message).toContain(message);
    // A server list may hold a password: a bad entry is named without it, and the whole value never.
    const leaky = configError({ REALTIME_TRANSPORT: "nats", NATS_URL: "nats://alice:s3cret@good:4222,https://bob:hunter2@bad" }).message;
    expect(leaky).toContain('"https://…@bad" is not one');
    expect(leaky).not.toMatch(/s3cret|hunter2/);
  });

  it("should read the WebSocket limits and refuse bad ones, naming the setting and the value", () => {
    const config = loadConfig({
      WS_CONNECTIONS_PER_USER: "5",
      WS_MAX_CONNECTIONS: "1000",
      WS_UNAUTHENTICATED_PER_ADDRESS: "7",
      WS_OPERATIONS_PER_SOCKET: "3",
      WS_MAX_BUFFERED_BYTES: "1048576",
      WS_KEEP_ALIVE_MS: "30000",
    });
    expect(config.ws).toEqual({
      connectionsPerUser: 5,
      maxConnections: 1000,
      unauthenticatedPerAddress: 7,
      operationsPerSocket: 3,
      maxBufferedBytes: 1048576,
      keepAliveMs: 30_000,
    });
    const bad: [string, string, string][] = [
      ["WS_CONNECTIONS_PER_USER", "0", "(1–1000000)"],
      ["WS_MAX_CONNECTIONS", "-5", "(1–10000000)"],
      ["WS_UNAUTHENTICATED_PER_ADDRESS", "lots", "(1–1000000)"],
      ["WS_OPERATIONS_PER_SOCKET", "1.5", "(1–10000)"],
      ["WS_MAX_BUFFERED_BYTES", "1024", "(65536–1073741824)"],
      ["WS_KEEP_ALIVE_MS", "50", "(100–3600000)"],
    ];
    for (const [name, value, range] of bad) {
      const error = configError({ [name]: value });
      expect(error.message).toContain(`${name} must be an integer ${range}, got "${value}"`);
    }
  });

  it("should size WS_MAX_CONNECTIONS from the open-file limit when unset, keeping a quarter of it free", () => {
    expect(defaultMaxConnections(undefined)).toBe(15_000);
    expect(defaultMaxConnections(1024)).toBe(768);
    expect(defaultMaxConnections(20_000)).toBe(15_000);
    expect(defaultMaxConnections(1_048_576)).toBe(15_000);
    expect(leavesFdHeadroom(15_000, 20_000)).toBe(true);
    expect(leavesFdHeadroom(19_000, 20_000)).toBe(false);
  });

  it("should refuse a DATABASE_URL that is not a Postgres URL", () => {
    expect(configError({ DATABASE_URL: "mysql://user@localhost:3306/app" }).message).toContain(
      "DATABASE_URL must start with postgres:// or postgresql://",
    );
    expect(configError({ DATABASE_URL: "not a url" }).message).toContain("DATABASE_URL must be a URL");
    expect(configError({ DATABASE_URL: "postgresql://h/db", DIRECT_URL: "http://h/db" }).message).toContain(
      "DIRECT_URL must start with postgres:// or postgresql://",
    );
  });

  it("should refuse an unknown DATABASE_DRIVER", () => {
    expect(configError({ DATABASE_DRIVER: "mysql" }).message).toContain('DATABASE_DRIVER must be "pg" or "neon"');
  });

  it("should select the neon driver for a *.neon.tech host unless DATABASE_DRIVER says otherwise", () => {
    const neonUrl = "postgresql://app:pw@ep-cool-name-123456.us-east-2.aws.neon.tech/app?sslmode=require";
    expect(loadConfig({ DATABASE_URL: neonUrl }).database.driver).toBe("neon");
    expect(loadConfig({ DATABASE_URL: neonUrl, DATABASE_DRIVER: "pg" }).database.driver).toBe("pg");
    expect(loadConfig({ DATABASE_URL: "postgresql://app@db.example.com/app" }).database.driver).toBe("pg");
    // Only a real subdomain of neon.tech counts.
    expect(loadConfig({ DATABASE_URL: "postgresql://app@evilneon.tech/app" }).database.driver).toBe("pg");
    expect(loadConfig({ DATABASE_URL: "postgresql://app@db.example.com/app", DATABASE_DRIVER: "neon" }).database.driver).toBe("neon");
  });

  it("should default DIRECT_URL to DATABASE_URL", () => {
    const url = "postgresql://app@db.example.com:5432/app";
    expect(loadConfig({ DATABASE_URL: url }).database).toMatchObject({ url, directUrl: url });
    const direct = "postgresql://app@direct.example.com:5432/app";
    expect(loadConfig({ DATABASE_URL: url, DIRECT_URL: direct }).database).toMatchObject({ url, directUrl: direct });
    expect(configError({ DIRECT_URL: direct }).message).toContain("DIRECT_URL is set but DATABASE_URL is not");
  });

  it("should refuse production without AUTH_JWT_SECRET or AUTH_JWKS_URL", () => {
    expect(configError({ NODE_ENV: "production" }).message).toContain("In production, AUTH_JWT_SECRET or AUTH_JWKS_URL must be set");
    const withSecret = loadConfig({ NODE_ENV: "production", AUTH_JWT_SECRET: SECRET });
    expect(withSecret.isProduction).toBe(true);
    expect(withSecret.auth.jwtSecret).toBe(SECRET);
    const withJwks = loadConfig({ NODE_ENV: "production", AUTH_JWKS_URL: "https://issuer.example.com/.well-known/jwks.json" });
    expect(withJwks.auth.jwksUrl).toBe("https://issuer.example.com/.well-known/jwks.json");
  });

  it("should refuse both AUTH_JWT_SECRET and AUTH_JWKS_URL", () => {
    expect(configError({ AUTH_JWT_SECRET: SECRET, AUTH_JWKS_URL: "https://issuer.example.com/.well-known/jwks.json" }).message).toContain(
      "Set AUTH_JWT_SECRET or AUTH_JWKS_URL, not both",
    );
  });

  it("should refuse an AUTH_JWT_SECRET shorter than 32 bytes", () => {
    expect(configError({ AUTH_JWT_SECRET: "s".repeat(31) }).message).toContain("AUTH_JWT_SECRET must be at least 32 bytes");
    // Surrounding whitespace does not count towards the length.
    expect(configError({ AUTH_JWT_SECRET: ` ${"s".repeat(31)} ` }).message).toContain("AUTH_JWT_SECRET must be at least 32 bytes");
    expect(loadConfig({ AUTH_JWT_SECRET: SECRET }).auth.jwtSecret).toBe(SECRET);
  });

  it("should read AUTH_MAX_TOKEN_AGE as seconds or with a unit", () => {
    const age = (AUTH_MAX_TOKEN_AGE: string) => loadConfig({ AUTH_MAX_TOKEN_AGE }).auth.maxTokenAgeSeconds;
    expect(age("3600")).toBe(3600);
    expect(age("90s")).toBe(90);
    expect(age("30m")).toBe(1800);
    expect(age(" 12h ")).toBe(43_200);
    expect(age("12H")).toBe(43_200);
    expect(age("7d")).toBe(604_800);
    expect(age("365d")).toBe(31_536_000);
    expect(age("")).toBeUndefined();
  });

  it("should refuse an AUTH_MAX_TOKEN_AGE that is not a duration from 1 second to 365 days", () => {
    for (const AUTH_MAX_TOKEN_AGE of ["0", "0h", "abc", "-5", "1.5h", "12w", "h", "366d", "99999999999999999999"]) {
      const error = configError({ AUTH_MAX_TOKEN_AGE });
      expect(error.message).toContain("AUTH_MAX_TOKEN_AGE must be a duration from 1 second to 365 days");
      expect(error.message).toContain(`"${AUTH_MAX_TOKEN_AGE}"`);
    }
  });

  it("should list every problem at once", () => {
    const message = configError({ PORT: "abc", DATABASE_POOL_SIZE: "0", DATABASE_DRIVER: "sqlite" }).message;
    expect(message).toContain("PORT must be a port number");
    expect(message).toContain("DATABASE_POOL_SIZE must be an integer");
    expect(message).toContain('DATABASE_DRIVER must be "pg" or "neon"');
  });

  it("should list every conflict between settings at once, one a line", () => {
    const message = configError({ NODE_ENV: "production", DIRECT_URL: "postgresql://h/db", REQUEST_TIMEOUT_MS: "200" }).message;
    expect(message.split("\n")).toEqual([
      "In production, AUTH_JWT_SECRET or AUTH_JWKS_URL must be set",
      "DIRECT_URL is set but DATABASE_URL is not",
      "HEADERS_TIMEOUT_MS (10000) must not exceed REQUEST_TIMEOUT_MS (200)",
    ]);
  });

  it("should name each bad origin of CORS_ORIGINS", () => {
    const lines = configError({ CORS_ORIGINS: "*, https://ok.example.com, ftp://x.example" }).message.split("\n");
    expect(lines).toHaveLength(2);
    expect(lines[0]).toMatch(/^CORS_ORIGINS .*"\*"/);
    expect(lines[1]).toMatch(/^CORS_ORIGINS .*"ftp:\/\/x\.example"/);
  });

  it("should never quote a secret or a URL back in an error, and quote other values exactly", () => {
    // A made-up credential: the test is that it never comes back in the message.
    // secretlint-disable-next-line
    const url = configError({ DATABASE_URL: "mysql://app:hunter2-password@db.example.com/app" }).message;
    expect(url).toBe("DATABASE_URL must start with postgres:// or postgresql://");
    expect(configError({ AUTH_JWT_SECRET: "hunter2-secret" }).message).toBe("AUTH_JWT_SECRET must be at least 32 bytes");
    expect(configError({ COHERE_BASE_URL: "not a url" }).message).toBe("COHERE_BASE_URL must be a URL starting with https:// or http://");
    expect(configError({ DATABASE_POOL_SIZE: 'ten "connections"' }).message).toBe(
      'DATABASE_POOL_SIZE must be an integer (1–1000), got "ten \\"connections\\""',
    );
  });

  it("should read MCP_AUTH_TOKEN for the stdio MCP server", () => {
    expect(loadConfig({}).mcp).toEqual({ authToken: undefined });
    expect(loadConfig({ MCP_AUTH_TOKEN: " a.b.c " }).mcp).toEqual({ authToken: "a.b.c" });
    expect(loadConfig({ MCP_AUTH_TOKEN: " " }).mcp).toEqual({ authToken: undefined });
  });
});

describe("the server process", () => {
  it("should exit non-zero with the problem on stderr when the configuration is invalid", async () => {
    const result = await new Promise<{ code: number | null; stderr: string }>((resolve) => {
      const child = execFile(
        process.execPath,
        ["--import", "tsx", "src/main.ts"],
        { cwd: ROOT, env: { ...process.env, PORT: "abc" }, timeout: 20_000 },
        (_error, _stdout, stderr) => resolve({ code: child.exitCode, stderr }),
      );
    });
    expect(result.code).not.toBe(0);
    expect(result.code).not.toBeNull();
    expect(result.stderr).toContain("PORT must be a port number");
  });

  it("should turn introspection and suggestions off in production, unless introspection is asked for", () => {
    const production = { NODE_ENV: "production", AUTH_JWT_SECRET: SECRET };
    expect(loadConfig(production).http).toMatchObject({ introspection: false, suggestions: false });
    expect(loadConfig({ ...production, GRAPHQL_INTROSPECTION: "true" }).http).toMatchObject({ introspection: true, suggestions: false });
    expect(loadConfig({ GRAPHQL_INTROSPECTION: "false" }).http.introspection).toBe(false);
    expect(configError({ GRAPHQL_INTROSPECTION: "yes" }).message).toContain('GRAPHQL_INTROSPECTION must be true or false, got "yes"');
  });

  it("should serve the web client by default in development only, unless WEB_UI says otherwise", () => {
    const production = { NODE_ENV: "production", AUTH_JWT_SECRET: SECRET };
    expect(loadConfig({}).webUi).toBe(true);
    expect(loadConfig(production).webUi).toBe(false);
    expect(loadConfig({ ...production, WEB_UI: "true" }).webUi).toBe(true);
    expect(loadConfig({ WEB_UI: "false" }).webUi).toBe(false);
    expect(loadConfig({ WEB_UI: "0" }).webUi).toBe(false);
    expect(configError({ WEB_UI: "on" }).message).toContain('WEB_UI must be true or false, got "on"');
  });

  it("should tell the install-time web build what the server will do, from WEB_UI and NODE_ENV alone", () => {
    expect(webUiWanted({})).toBe(true);
    expect(webUiWanted({ NODE_ENV: "production" })).toBe(false);
    expect(webUiWanted({ NODE_ENV: "production", WEB_UI: "1" })).toBe(true);
    expect(webUiWanted({ WEB_UI: "false" })).toBe(false);
    // The server refuses to start on a bad WEB_UI; the build skips. Other settings are not its business.
    expect(webUiWanted({ WEB_UI: "on" })).toBe(false);
    expect(webUiWanted({ NODE_ENV: "production", WEB_UI: "true", PORT: "abc" })).toBe(true);
  });

  it("should read CORS_ORIGINS as a list of exact origins", () => {
    expect(loadConfig({ CORS_ORIGINS: "https://app.example.com, http://localhost:5173" }).http.corsOrigins).toEqual([
      "https://app.example.com",
      "http://localhost:5173",
    ]);
    for (const bad of ["*", "https://app.example.com/", "app.example.com", "https://*.example.com", "ftp://x.example"]) {
      expect(configError({ CORS_ORIGINS: bad }).message).toContain("CORS_ORIGINS");
    }
  });

  it("should read the limits, the body size and the statement timeout", () => {
    const config = loadConfig({
      MAX_BODY_BYTES: "2048",
      DATABASE_STATEMENT_TIMEOUT_MS: "0",
      GRAPHQL_MAX_DEPTH: "7",
      GRAPHQL_MAX_ALIASES: "3",
      GRAPHQL_MAX_TOKENS: "500",
      GRAPHQL_MAX_DIRECTIVES: "5",
      GRAPHQL_MAX_COST: "100",
    });
    expect(config.http.maxBodyBytes).toBe(2048);
    expect(config.database.statementTimeoutMs).toBe(0);
    expect(config.http.limits).toEqual({ depth: 7, aliases: 3, tokens: 500, directives: 5, cost: 100 });
    expect(configError({ MAX_BODY_BYTES: "10" }).message).toContain("MAX_BODY_BYTES must be an integer (1024–104857600)");
    expect(configError({ GRAPHQL_MAX_COST: "0" }).message).toContain("GRAPHQL_MAX_COST");
  });

  it("should read the request timeouts, and follow MAX_BODY_BYTES when REQUEST_TIMEOUT_MS is unset", () => {
    expect(loadConfig({ REQUEST_TIMEOUT_MS: "2000", HEADERS_TIMEOUT_MS: "500", KEEP_ALIVE_TIMEOUT_MS: "700" }).http.timeouts).toEqual({
      requestMs: 2000,
      headersMs: 500,
      keepAliveMs: 700,
    });
    // 30 s per started MiB: a body at the limit must arrive at about 35 KB/s.
    expect(loadConfig({ MAX_BODY_BYTES: String(10 * 1024 * 1024) }).http.timeouts.requestMs).toBe(300_000);
    expect(loadConfig({ MAX_BODY_BYTES: String(1024 * 1024 + 1) }).http.timeouts.requestMs).toBe(60_000);
    expect(configError({ REQUEST_TIMEOUT_MS: "5000" }).message).toBe("HEADERS_TIMEOUT_MS (10000) must not exceed REQUEST_TIMEOUT_MS (5000)");
    expect(configError({ REQUEST_TIMEOUT_MS: "0" }).message).toContain("REQUEST_TIMEOUT_MS must be an integer (100–3600000)");
    expect(configError({ KEEP_ALIVE_TIMEOUT_MS: "soon" }).message).toContain("KEEP_ALIVE_TIMEOUT_MS must be an integer");
  });
});
