import { isIP } from "node:net";
import { z } from "zod";

export type DatabaseDriver = "pg" | "neon";

export interface Config {
  nodeEnv: string;
  isProduction: boolean;
  port: number;
  /** The address the HTTP server binds: loopback in development, every interface in production. */
  host: string;
  logLevel: string;
  database: {
    /** Unset: the embedded Postgres under ./.data/postgres. */
    url: string | undefined;
    /** The unpooled endpoint, for migrations and LISTEN. Defaults to url. */
    directUrl: string | undefined;
    driver: DatabaseDriver;
    poolSize: number;
    connectionTimeoutMs: number;
  };
  auth: {
    jwtSecret: string | undefined;
    jwksUrl: string | undefined;
    issuer: string | undefined;
    audience: string | undefined;
  };
  cohere: {
    apiKey: string | undefined;
    model: string;
    baseUrl: string | undefined;
    maxSteps: number;
    timeoutMs: number;
    turnTimeoutMs: number;
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

function intSetting(name: string, fallback: number, min: number, max: number, noun = "an integer") {
  return z
    .string()
    .trim()
    .optional()
    .transform((raw, ctx) => {
      if (raw === undefined || raw === "") return fallback;
      const value = Number(raw);
      if (!/^\d+$/.test(raw) || value < min || value > max) {
        ctx.addIssue({ code: "custom", message: `${name} must be ${noun} (${min}–${max}), got "${raw}"` });
        return z.NEVER;
      }
      return value;
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

/** An RFC 1123 host name: dot-separated labels of letters, digits and inner hyphens. */
const HOST_NAME = /^(?=.{1,253}$)[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*$/i;

const PG_PROTOCOLS = ["postgres:", "postgresql:"] as const;

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
  AUTH_JWT_SECRET: optionalString.superRefine((v, ctx) => {
    // HS256 with fewer than 256 bits of key is brute-forceable (RFC 7518 §3.2).
    if (v !== undefined && Buffer.byteLength(v) < 32) {
      ctx.addIssue({ code: "custom", message: "AUTH_JWT_SECRET must be at least 32 bytes" });
    }
  }),
  AUTH_JWKS_URL: urlSetting("AUTH_JWKS_URL", ["https:", "http:"]),
  AUTH_JWT_ISSUER: optionalString,
  AUTH_JWT_AUDIENCE: optionalString,
  COHERE_API_KEY: optionalString,
  COHERE_MODEL: optionalString,
  COHERE_BASE_URL: urlSetting("COHERE_BASE_URL", ["https:", "http:"]),
  COHERE_MAX_STEPS: intSetting("COHERE_MAX_STEPS", 8, 1, 50),
  COHERE_TIMEOUT_MS: intSetting("COHERE_TIMEOUT_MS", 30_000, 1, 600_000),
  COHERE_TURN_TIMEOUT_MS: intSetting("COHERE_TURN_TIMEOUT_MS", 120_000, 1, 3_600_000),
});

function isNeonHost(url: string | undefined): boolean {
  if (url === undefined) return false;
  return new URL(url).hostname.endsWith(".neon.tech");
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
    port: e.PORT,
    // Loopback by default outside production, so a development server is not
    // reachable from the network unless HOST says so.
    host: e.HOST ?? (isProduction ? "0.0.0.0" : "127.0.0.1"),
    logLevel: e.LOG_LEVEL ?? "info",
    database: {
      url: e.DATABASE_URL,
      directUrl: e.DIRECT_URL ?? e.DATABASE_URL,
      driver,
      poolSize: e.DATABASE_POOL_SIZE,
      connectionTimeoutMs: e.DATABASE_CONNECTION_TIMEOUT_MS,
    },
    auth: {
      jwtSecret: e.AUTH_JWT_SECRET,
      jwksUrl: e.AUTH_JWKS_URL,
      issuer: e.AUTH_JWT_ISSUER,
      audience: e.AUTH_JWT_AUDIENCE,
    },
    cohere: {
      apiKey: e.COHERE_API_KEY,
      model: e.COHERE_MODEL ?? "command-a-03-2025",
      baseUrl: e.COHERE_BASE_URL,
      maxSteps: e.COHERE_MAX_STEPS,
      timeoutMs: e.COHERE_TIMEOUT_MS,
      turnTimeoutMs: e.COHERE_TURN_TIMEOUT_MS,
    },
  };
}
