import { execFile } from "node:child_process";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { ConfigError, loadConfig } from "../src/config.js";

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
      driver: "pg",
      poolSize: 10,
      connectionTimeoutMs: 5000,
    });
    expect(config.auth).toEqual({ jwtSecret: undefined, jwksUrl: undefined, issuer: undefined, audience: undefined });
    expect(config.cohere.model).toBe("command-a-03-2025");
    expect(config.cohere.apiKey).toBeUndefined();
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
    expect(loadConfig({ DATABASE_URL: "postgresql://app@db.example.com/app", DATABASE_DRIVER: "neon" }).database.driver).toBe(
      "neon",
    );
  });

  it("should default DIRECT_URL to DATABASE_URL", () => {
    const url = "postgresql://app@db.example.com:5432/app";
    expect(loadConfig({ DATABASE_URL: url }).database).toMatchObject({ url, directUrl: url });
    const direct = "postgresql://app@direct.example.com:5432/app";
    expect(loadConfig({ DATABASE_URL: url, DIRECT_URL: direct }).database).toMatchObject({ url, directUrl: direct });
    expect(configError({ DIRECT_URL: direct }).message).toContain("DIRECT_URL is set but DATABASE_URL is not");
  });

  it("should refuse production without AUTH_JWT_SECRET or AUTH_JWKS_URL", () => {
    expect(configError({ NODE_ENV: "production" }).message).toContain(
      "In production, AUTH_JWT_SECRET or AUTH_JWKS_URL must be set",
    );
    const withSecret = loadConfig({ NODE_ENV: "production", AUTH_JWT_SECRET: SECRET });
    expect(withSecret.isProduction).toBe(true);
    expect(withSecret.auth.jwtSecret).toBe(SECRET);
    const withJwks = loadConfig({ NODE_ENV: "production", AUTH_JWKS_URL: "https://issuer.example.com/.well-known/jwks.json" });
    expect(withJwks.auth.jwksUrl).toBe("https://issuer.example.com/.well-known/jwks.json");
  });

  it("should refuse both AUTH_JWT_SECRET and AUTH_JWKS_URL", () => {
    expect(
      configError({ AUTH_JWT_SECRET: SECRET, AUTH_JWKS_URL: "https://issuer.example.com/.well-known/jwks.json" }).message,
    ).toContain("Set AUTH_JWT_SECRET or AUTH_JWKS_URL, not both");
  });

  it("should refuse an AUTH_JWT_SECRET shorter than 32 bytes", () => {
    expect(configError({ AUTH_JWT_SECRET: "s".repeat(31) }).message).toContain("AUTH_JWT_SECRET must be at least 32 bytes");
    // Surrounding whitespace does not count towards the length.
    expect(configError({ AUTH_JWT_SECRET: ` ${"s".repeat(31)} ` }).message).toContain(
      "AUTH_JWT_SECRET must be at least 32 bytes",
    );
    expect(loadConfig({ AUTH_JWT_SECRET: SECRET }).auth.jwtSecret).toBe(SECRET);
  });

  it("should list every problem at once", () => {
    const message = configError({ PORT: "abc", DATABASE_POOL_SIZE: "0", DATABASE_DRIVER: "sqlite" }).message;
    expect(message).toContain("PORT must be a port number");
    expect(message).toContain("DATABASE_POOL_SIZE must be an integer");
    expect(message).toContain('DATABASE_DRIVER must be "pg" or "neon"');
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
});
