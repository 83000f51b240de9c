import { isIP } from "node:net";
import { z } from "zod";

import type { AuthSettings } from "../auth/verifier.js";
import type { ApprovalPolicy } from "../chat/approval-policy.js";
import type { DatabaseDriver, DatabaseSettings } from "../db/settings.js";
import { DEFAULT_QUERY_LIMITS } from "../server/limits/query-limits.js";
import { DEFAULT_WS_SETTINGS, type HttpSettings, type HttpTimeouts, type WsSettings } from "../server/settings.js";
import { defaultRequestTimeoutMs } from "../server/timeouts.js";

export type { HttpSettings, WsSettings } from "../server/settings.js";
export { DEFAULT_QUERY_LIMITS } from "../server/limits/query-limits.js";

export interface Config {
  nodeEnv: string;
  /** How long a SIGTERM lets accepted requests finish (SHUTDOWN_GRACE_MS). */
  shutdownGraceMs: number;
  isProduction: boolean;
  port: number;
  /** The address the HTTP server binds: loopback in development, every interface in production. */
  host: string;
  logLevel: string;
  /** WEB_UI: the web client at `/`; default on in development, off in production. */
  webUi: boolean;
  database: DatabaseSettings;
  http: HttpSettings;
  ws: WsSettings;
  auth: AuthSettings;
  cohere: {
    apiKey: string | undefined;
    model: string;
    baseUrl: string | undefined;
    maxSteps: number;
    timeoutMs: number;
    turnTimeoutMs: number;
    /** COHERE_MAX_INPUT_TOKENS: the estimated size of the window sent to the model (preamble, tools, newest messages). */
    maxInputTokens: number;
  };
  realtime: {
    /** Subscriptions one user may have open at once on one instance (SUBSCRIPTIONS_PER_USER). */
    subscriptionsPerUser: number;
  };
  chat: {
    /** sendMessage calls a minute per user, across all instances; 0: no limit. */
    rateLimitPerMinute: number;
    /** How many sends a user may make at once before the per-minute rate applies. */
    rateBurst: number;
    /** STREAM_FLUSH_MS: the longest a streamed answer's stored text lags behind what the model sent. */
    streamFlushMs: number;
    /** CHAT_MAX_TOOL_CALLS_PER_STEP: past it, none of the step's calls run and the turn ends (ASSISTANT_TOO_MANY_TOOL_CALLS). */
    maxToolCallsPerStep: number;
    /** CHAT_MAX_ANSWER_CHARS: an answer is cut here, with a marker (ASSISTANT_ANSWER_TOO_LONG). */
    maxAnswerChars: number;
    /** CHAT_APPROVAL: which tool calls wait for the user's approval (destructive, all, none). */
    approval: ApprovalPolicy;
    /** CHAT_APPROVAL_TTL: how long a held call waits for a decision, in seconds. */
    approvalTtlSeconds: number;
  };
}



export class ConfigError extends Error {
  override name = "ConfigError";
}

const LOG_LEVELS = ["fatal", "error", "warn", "info", "debug", "trace", "silent"] as const;

const optionalString = z
  .string()
  .trim()
  .transform((v) => (v === "" ? undefined : v))
  .optional();

function intSetting<F extends number | undefined>(name: string, fallback: F, min: number, max: number, noun = "an integer") {
  return z
    .string()
    .trim()
    .optional()
    .transform((raw, ctx): number | F => {
      if (raw === undefined || raw === "") return fallback;
      const value = Number(raw);
      if (!/^\d+$/.test(raw) || value < min || value > max) {
        ctx.addIssue({ code: "custom", message: `${name} must be ${noun} (${min}–${max}), got "${raw}"` });
        return z.NEVER;
      }
      return value;
    });
}

const SECONDS_PER_UNIT: Record<string, number> = { s: 1, m: 60, h: 3600, d: 86_400 };

/** A duration in whole seconds, as "3600" or with a unit ("90s", "30m", "12h", "7d"), 1 second to maxDays. Unset: undefined. */
function durationSetting(name: string, maxDays: number) {
  return z
    .string()
    .trim()
    .optional()
    .transform((raw, ctx) => {
      if (raw === undefined || raw === "") return undefined;
      const match = /^(\d+)\s*([smhd]?)$/i.exec(raw);
      const unit = SECONDS_PER_UNIT[(match?.[2] || "s").toLowerCase()] ?? Number.NaN;
      const seconds = match ? Number(match[1]) * unit : Number.NaN;
      if (!(seconds >= 1 && seconds <= maxDays * 86_400)) {
        ctx.addIssue({
          code: "custom",
          message: `${name} must be a duration from 1 second to ${maxDays} days, in seconds ("3600") or with a unit s, m, h or d ("12h"), got "${raw}"`,
        });
        return z.NEVER;
      }
      return seconds;
    });
}

function urlSetting(name: string, protocols: readonly string[]) {
  return optionalString.superRefine((value, ctx) => {
    if (value === undefined) return;
    let url: URL;
    try {
      url = new URL(value);
    } catch {
      ctx.addIssue({ code: "custom", message: `${name} must be a URL` });
      return;
    }
    if (!protocols.includes(url.protocol)) {
      ctx.addIssue({ code: "custom", message: `${name} must start with ${protocols.map((p) => `${p}//`).join(" or ")}` });
    }
  });
}

function booleanSetting(name: string) {
  return optionalString.transform((raw, ctx) => {
    if (raw === undefined) return undefined;
    if (raw === "true" || raw === "1") return true;
    if (raw === "false" || raw === "0") return false;
    ctx.addIssue({ code: "custom", message: `${name} must be true or false, got "${raw}"` });
    return z.NEVER;
  });
}

/** scheme://host[:port] exactly, as browsers send it in Origin. */
function isOrigin(value: string): boolean {
  try {
    const url = new URL(value);
    return (url.protocol === "http:" || url.protocol === "https:") && url.origin === value && !value.includes("*");
  } catch {
    return false;
  }
}

/** An RFC 1123 host name: dot-separated labels of letters, digits and inner hyphens. */
const HOST_NAME = /^(?=.{1,253}$)[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*$/i;

const PG_PROTOCOLS = ["postgres:", "postgresql:"] as const;

const APPROVAL_POLICIES = ["destructive", "all", "none"] as const satisfies readonly ApprovalPolicy[];

const envSchema = z.object({
  NODE_ENV: optionalString,
  PORT: z
    .string()
    .trim()
    .optional()
    .transform((raw, ctx) => {
      if (raw === undefined || raw === "") return 4000;
      const value = Number(raw);
      if (!/^\d+$/.test(raw) || value > 65535) {
        ctx.addIssue({ code: "custom", message: "PORT must be a port number (0–65535)" });
        return z.NEVER;
      }
      return value;
    }),
  HOST: optionalString.superRefine((v, ctx) => {
    if (v !== undefined && isIP(v) === 0 && !HOST_NAME.test(v)) {
      ctx.addIssue({
        code: "custom",
        message: `HOST must be an IP address or a host name (e.g. 127.0.0.1, 0.0.0.0, ::, localhost), got ${JSON.stringify(v)}`,
      });
    }
  }),
  LOG_LEVEL: optionalString.superRefine((v, ctx) => {
    if (v !== undefined && !(LOG_LEVELS as readonly string[]).includes(v)) {
      ctx.addIssue({ code: "custom", message: `LOG_LEVEL must be one of ${LOG_LEVELS.join(", ")}` });
    }
  }),
  DATABASE_URL: urlSetting("DATABASE_URL", PG_PROTOCOLS),
  DIRECT_URL: urlSetting("DIRECT_URL", PG_PROTOCOLS),
  DATABASE_DRIVER: optionalString.superRefine((v, ctx) => {
    if (v !== undefined && v !== "pg" && v !== "neon") {
      ctx.addIssue({ code: "custom", message: 'DATABASE_DRIVER must be "pg" or "neon"' });
    }
  }),
  DATABASE_POOL_SIZE: intSetting("DATABASE_POOL_SIZE", 10, 1, 1000),
  DATABASE_CONNECTION_TIMEOUT_MS: intSetting("DATABASE_CONNECTION_TIMEOUT_MS", 5000, 1, 600_000),
  SHUTDOWN_GRACE_MS: intSetting("SHUTDOWN_GRACE_MS", 25_000, 0, 600_000),
  DATABASE_STATEMENT_TIMEOUT_MS: intSetting("DATABASE_STATEMENT_TIMEOUT_MS", 10_000, 0, 3_600_000),
  MAX_BODY_BYTES: intSetting("MAX_BODY_BYTES", 1024 * 1024, 1024, 100 * 1024 * 1024),
  // 0 only when unset: then it follows MAX_BODY_BYTES (defaultRequestTimeoutMs).
  REQUEST_TIMEOUT_MS: intSetting("REQUEST_TIMEOUT_MS", 0, 100, 3_600_000),
  HEADERS_TIMEOUT_MS: intSetting("HEADERS_TIMEOUT_MS", 10_000, 100, 3_600_000),
  KEEP_ALIVE_TIMEOUT_MS: intSetting("KEEP_ALIVE_TIMEOUT_MS", 5000, 100, 600_000),
  CORS_ORIGINS: optionalString.transform((value, ctx) => {
    if (value === undefined) return [];
    const origins = value.split(",").map((origin) => origin.trim()).filter((origin) => origin !== "");
    for (const origin of origins) {
      if (!isOrigin(origin)) {
        ctx.addIssue({ code: "custom", message: `CORS_ORIGINS: "${origin}" is not an origin like https://app.example.com (no path, no wildcard)` });
      }
    }
    return origins;
  }),
  GRAPHQL_INTROSPECTION: booleanSetting("GRAPHQL_INTROSPECTION"),
  WEB_UI: booleanSetting("WEB_UI"),
  GRAPHQL_MAX_DEPTH: intSetting("GRAPHQL_MAX_DEPTH", DEFAULT_QUERY_LIMITS.depth, 1, 1000),
  GRAPHQL_MAX_ALIASES: intSetting("GRAPHQL_MAX_ALIASES", DEFAULT_QUERY_LIMITS.aliases, 0, 10_000),
  GRAPHQL_MAX_TOKENS: intSetting("GRAPHQL_MAX_TOKENS", DEFAULT_QUERY_LIMITS.tokens, 10, 1_000_000),
  GRAPHQL_MAX_DIRECTIVES: intSetting("GRAPHQL_MAX_DIRECTIVES", DEFAULT_QUERY_LIMITS.directives, 0, 10_000),
  GRAPHQL_MAX_COST: intSetting("GRAPHQL_MAX_COST", DEFAULT_QUERY_LIMITS.cost, 1, 100_000_000),
  AUTH_JWT_SECRET: optionalString.superRefine((v, ctx) => {
    // HS256 with fewer than 256 bits of key is brute-forceable (RFC 7518 §3.2).
    if (v !== undefined && Buffer.byteLength(v) < 32) {
      ctx.addIssue({ code: "custom", message: "AUTH_JWT_SECRET must be at least 32 bytes" });
    }
  }),
  AUTH_JWKS_URL: urlSetting("AUTH_JWKS_URL", ["https:", "http:"]),
  AUTH_JWT_ISSUER: optionalString,
  AUTH_JWT_AUDIENCE: optionalString,
  AUTH_MAX_TOKEN_AGE: durationSetting("AUTH_MAX_TOKEN_AGE", 365),
  COHERE_API_KEY: optionalString,
  COHERE_MODEL: optionalString,
  COHERE_BASE_URL: urlSetting("COHERE_BASE_URL", ["https:", "http:"]),
  COHERE_MAX_STEPS: intSetting("COHERE_MAX_STEPS", 8, 1, 50),
  COHERE_TIMEOUT_MS: intSetting("COHERE_TIMEOUT_MS", 30_000, 1, 600_000),
  COHERE_TURN_TIMEOUT_MS: intSetting("COHERE_TURN_TIMEOUT_MS", 120_000, 1, 3_600_000),
  COHERE_MAX_INPUT_TOKENS: intSetting("COHERE_MAX_INPUT_TOKENS", 100_000, 1000, 10_000_000),
  CHAT_RATE_LIMIT: intSetting("CHAT_RATE_LIMIT", 20, 0, 100_000),
  CHAT_RATE_BURST: intSetting("CHAT_RATE_BURST", 5, 1, 10_000),
  CHAT_MAX_TOOL_CALLS_PER_STEP: intSetting("CHAT_MAX_TOOL_CALLS_PER_STEP", 16, 1, 1000),
  CHAT_MAX_ANSWER_CHARS: intSetting("CHAT_MAX_ANSWER_CHARS", 20_000, 100, 1_000_000),
  CHAT_APPROVAL: optionalString.superRefine((v, ctx) => {
    if (v !== undefined && !(APPROVAL_POLICIES as readonly string[]).includes(v)) {
      ctx.addIssue({ code: "custom", message: `CHAT_APPROVAL must be one of ${APPROVAL_POLICIES.join(", ")}, got "${v}"` });
    }
  }),
  CHAT_APPROVAL_TTL: durationSetting("CHAT_APPROVAL_TTL", 7),
  SUBSCRIPTIONS_PER_USER: intSetting("SUBSCRIPTIONS_PER_USER", 50, 1, 10_000),
  STREAM_FLUSH_MS: intSetting("STREAM_FLUSH_MS", 100, 10, 10_000),
  WS_CONNECTIONS_PER_USER: intSetting("WS_CONNECTIONS_PER_USER", DEFAULT_WS_SETTINGS.connectionsPerUser, 1, 1_000_000),
  WS_MAX_CONNECTIONS: intSetting("WS_MAX_CONNECTIONS", undefined, 1, 10_000_000),
  WS_UNAUTHENTICATED_PER_ADDRESS: intSetting("WS_UNAUTHENTICATED_PER_ADDRESS", DEFAULT_WS_SETTINGS.unauthenticatedPerAddress, 1, 1_000_000),
  WS_OPERATIONS_PER_SOCKET: intSetting("WS_OPERATIONS_PER_SOCKET", DEFAULT_WS_SETTINGS.operationsPerSocket, 1, 10_000),
  WS_MAX_BUFFERED_BYTES: intSetting("WS_MAX_BUFFERED_BYTES", DEFAULT_WS_SETTINGS.maxBufferedBytes, 64 * 1024, 1024 * 1024 * 1024),
});

function wsSettings(e: z.output<typeof envSchema>): WsSettings {
  return {
    connectionsPerUser: e.WS_CONNECTIONS_PER_USER,
    maxConnections: e.WS_MAX_CONNECTIONS,
    unauthenticatedPerAddress: e.WS_UNAUTHENTICATED_PER_ADDRESS,
    operationsPerSocket: e.WS_OPERATIONS_PER_SOCKET,
    maxBufferedBytes: e.WS_MAX_BUFFERED_BYTES,
  };
}

function isNeonHost(url: string | undefined): boolean {
  if (url === undefined) return false;
  return new URL(url).hostname.endsWith(".neon.tech");
}

function httpSettings(e: z.infer<typeof envSchema>, isProduction: boolean): HttpSettings {
  return {
    maxBodyBytes: e.MAX_BODY_BYTES,
    corsOrigins: e.CORS_ORIGINS,
    introspection: e.GRAPHQL_INTROSPECTION ?? !isProduction,
    suggestions: !isProduction,
    limits: {
      depth: e.GRAPHQL_MAX_DEPTH,
      aliases: e.GRAPHQL_MAX_ALIASES,
      tokens: e.GRAPHQL_MAX_TOKENS,
      directives: e.GRAPHQL_MAX_DIRECTIVES,
      cost: e.GRAPHQL_MAX_COST,
    },
    timeouts: httpTimeouts(e),
  };
}

function httpTimeouts(e: z.infer<typeof envSchema>): HttpTimeouts {
  const requestMs = e.REQUEST_TIMEOUT_MS || defaultRequestTimeoutMs(e.MAX_BODY_BYTES);
  // Node refuses a headers timeout longer than the request's; say so in the settings' own names.
  if (e.HEADERS_TIMEOUT_MS > requestMs) {
    throw new ConfigError(`HEADERS_TIMEOUT_MS (${e.HEADERS_TIMEOUT_MS}) must not exceed REQUEST_TIMEOUT_MS (${requestMs})`);
  }
  return { requestMs, headersMs: e.HEADERS_TIMEOUT_MS, keepAliveMs: e.KEEP_ALIVE_TIMEOUT_MS };
}

/** Parses and validates the environment once; throws ConfigError listing every problem. */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  const parsed = envSchema.safeParse(env);
  if (!parsed.success) {
    throw new ConfigError(parsed.error.issues.map((issue) => issue.message).join("\n"));
  }
  const e = parsed.data;
  const nodeEnv = e.NODE_ENV ?? "development";
  const isProduction = nodeEnv === "production";
  if (e.AUTH_JWT_SECRET !== undefined && e.AUTH_JWKS_URL !== undefined) {
    throw new ConfigError("Set AUTH_JWT_SECRET or AUTH_JWKS_URL, not both");
  }
  if (isProduction && e.AUTH_JWT_SECRET === undefined && e.AUTH_JWKS_URL === undefined) {
    throw new ConfigError("In production, AUTH_JWT_SECRET or AUTH_JWKS_URL must be set");
  }
  if (e.DIRECT_URL !== undefined && e.DATABASE_URL === undefined) {
    throw new ConfigError("DIRECT_URL is set but DATABASE_URL is not");
  }
  const driver: DatabaseDriver =
    (e.DATABASE_DRIVER as DatabaseDriver | undefined) ?? (isNeonHost(e.DATABASE_URL) ? "neon" : "pg");
  return {
    nodeEnv,
    isProduction,
    shutdownGraceMs: e.SHUTDOWN_GRACE_MS,
    port: e.PORT,
    // Loopback by default outside production, so a development server is not
    // reachable from the network unless HOST says so.
    host: e.HOST ?? (isProduction ? "0.0.0.0" : "127.0.0.1"),
    logLevel: e.LOG_LEVEL ?? "info",
    webUi: e.WEB_UI ?? !isProduction,
    database: {
      url: e.DATABASE_URL,
      directUrl: e.DIRECT_URL ?? e.DATABASE_URL,
      driver,
      poolSize: e.DATABASE_POOL_SIZE,
      connectionTimeoutMs: e.DATABASE_CONNECTION_TIMEOUT_MS,
      statementTimeoutMs: e.DATABASE_STATEMENT_TIMEOUT_MS,
    },
    http: httpSettings(e, isProduction),
    ws: wsSettings(e),
    auth: {
      jwtSecret: e.AUTH_JWT_SECRET,
      jwksUrl: e.AUTH_JWKS_URL,
      issuer: e.AUTH_JWT_ISSUER,
      audience: e.AUTH_JWT_AUDIENCE,
      maxTokenAgeSeconds: e.AUTH_MAX_TOKEN_AGE,
    },
    cohere: {
      apiKey: e.COHERE_API_KEY,
      model: e.COHERE_MODEL ?? "command-a-03-2025",
      baseUrl: e.COHERE_BASE_URL,
      maxSteps: e.COHERE_MAX_STEPS,
      timeoutMs: e.COHERE_TIMEOUT_MS,
      turnTimeoutMs: e.COHERE_TURN_TIMEOUT_MS,
      maxInputTokens: e.COHERE_MAX_INPUT_TOKENS,
    },
    realtime: {
      subscriptionsPerUser: e.SUBSCRIPTIONS_PER_USER,
    },
    chat: {
      rateLimitPerMinute: e.CHAT_RATE_LIMIT,
      rateBurst: e.CHAT_RATE_BURST,
      streamFlushMs: e.STREAM_FLUSH_MS,
      maxToolCallsPerStep: e.CHAT_MAX_TOOL_CALLS_PER_STEP,
      maxAnswerChars: e.CHAT_MAX_ANSWER_CHARS,
      approval: (e.CHAT_APPROVAL as ApprovalPolicy | undefined) ?? "destructive",
      approvalTtlSeconds: e.CHAT_APPROVAL_TTL ?? 15 * 60,
    },
  };
}
