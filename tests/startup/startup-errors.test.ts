import { randomBytes } from "node:crypto";
import { createServer, type Server, type Socket } from "node:net";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { ConfigError, type Config } from "../../src/boot/config.js";
import { EmbeddedPostgresError, freePort } from "../../src/db/embedded.js";
import { MigrationError } from "../../src/db/migrate.js";
import { openDatabase } from "../../src/db/open.js";
import { createLogger } from "../../src/lib/logger.js";
import { assertCanListen } from "../../src/boot/port-check.js";
import { startupErrorLine } from "../../src/boot/startup-errors.js";
import { databaseUrl } from "../helpers/db.js";

/** A password no line may contain. */
const SECRET = `pw-${randomBytes(12).toString("hex")}`;

/** The line a failed start prints for this rejection (the promise must reject). */
async function lineFor(promise: Promise<unknown>): Promise<string> {
  const error = await promise.then(
    () => {
      throw new Error("expected a failure");
    },
    (failure: unknown) => failure,
  );
  return startupErrorLine(error);
}

function settings(url: string, directUrl = url, connectionTimeoutMs = 5000): Config["database"] {
  return { url, directUrl, embeddedDataDir: ".data/postgres", driver: "pg", poolSize: 1, connectionTimeoutMs, statementTimeoutMs: 0 };
}

function openLine(database: Config["database"]): Promise<string> {
  return lineFor(openDatabase(database, createLogger("silent")));
}

/** A loopback TCP server that treats each connection as `handle` says: a stand-in for something that is not Postgres. */
async function tcpServer(handle: (socket: Socket) => void): Promise<{ server: Server; port: number }> {
  const server = createServer(handle);
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return { server, port: (server.address() as { port: number }).port };
}

describe("start-up error lines", () => {
  const sockets = new Set<Socket>();
  let occupied: { server: Server; port: number };
  let silent: { server: Server; port: number };
  let hangingUp: { server: Server; port: number };
  let closedPort: number;

  beforeAll(async () => {
    occupied = await tcpServer((socket) => socket.destroy());
    // Accepts and never answers: a connect that can only time out.
    silent = await tcpServer((socket) => {
      sockets.add(socket);
      socket.on("error", () => {});
    });
    // Reads the first bytes, then ends the connection: a clean hang-up (with unread bytes it would be a reset).
    hangingUp = await tcpServer((socket) => {
      socket.on("error", () => {});
      socket.once("data", () => socket.end());
    });
    closedPort = await freePort();
  });

  afterAll(async () => {
    for (const socket of sockets) socket.destroy();
    for (const each of [occupied, silent, hangingUp]) await new Promise((resolve) => each?.server.close(resolve));
  });

  describe("listening", () => {
    it("should say PORT is in use", async () => {
      expect(await lineFor(assertCanListen(occupied.port, "127.0.0.1"))).toBe(
        `PORT ${occupied.port} is in use on 127.0.0.1; set PORT to a free port`,
      );
    });

    it("should say HOST is not an address of this machine", async () => {
      // 192.0.2.1 is TEST-NET-1 (RFC 5737): never assigned to a real interface.
      expect(await lineFor(assertCanListen(await freePort(), "192.0.2.1"))).toBe("HOST 192.0.2.1 is not an address of this machine; set HOST");
    });

    it("should say HOST cannot be resolved", async () => {
      // Without a resolver the lookup fails as EAI_AGAIN instead.
      expect(await lineFor(assertCanListen(await freePort(), "no-such-host.invalid"))).toMatch(
        /^HOST no-such-host\.invalid cannot be resolved \((ENOTFOUND|EAI_AGAIN)\); set HOST$/,
      );
    });

    it("should leave a free port free", async () => {
      const port = await freePort();
      await assertCanListen(port, "127.0.0.1");
      await assertCanListen(port, "127.0.0.1");
    });
  });

  describe("the configured database", () => {
    it("should name the host and port, never the password, when nothing listens there", async () => {
      const line = await openLine(settings(`postgresql://app:${SECRET}@127.0.0.1:${closedPort}/nowhere`));
      expect(line).toBe(`Cannot reach the database at 127.0.0.1:${closedPort} (ECONNREFUSED); check DATABASE_URL`);
    });

    it("should name an unknown host", async () => {
      const line = await openLine(settings(`postgresql://app:${SECRET}@no-such-host.invalid/nowhere`));
      expect(line).toMatch(/^Cannot reach the database at no-such-host\.invalid:5432 \((ENOTFOUND|EAI_AGAIN)\); check DATABASE_URL$/);
    });

    it("should name DIRECT_URL when that is the one it cannot reach", async () => {
      const direct = `postgresql://app:${SECRET}@127.0.0.1:${closedPort}/nowhere`;
      expect(await openLine(settings(databaseUrl(), direct))).toBe(
        `Cannot reach the database at 127.0.0.1:${closedPort} (ECONNREFUSED); check DIRECT_URL`,
      );
    });

    it("should give up on a server that never answers after DATABASE_CONNECTION_TIMEOUT_MS", async () => {
      const line = await openLine(settings(`postgresql://app:${SECRET}@127.0.0.1:${silent.port}/db`, undefined, 300));
      expect(line).toBe(`Cannot reach the database at 127.0.0.1:${silent.port} (no answer in time); check DATABASE_URL`);
    });

    it("should say when something that is not Postgres hangs up", async () => {
      const line = await openLine(settings(`postgresql://app:${SECRET}@127.0.0.1:${hangingUp.port}/db`));
      expect(line).toBe(
        `Cannot reach the database at 127.0.0.1:${hangingUp.port} (the connection was closed; is it a Postgres server?); check DATABASE_URL`,
      );
    });

    it("should pass on the server's reason when it refuses the connection", async () => {
      const url = new URL(databaseUrl());
      const name = `todo_missing_${randomBytes(4).toString("hex")}`;
      url.pathname = `/${name}`;
      expect(await openLine(settings(url.toString()))).toBe(
        `The database at ${url.hostname}:${url.port || "5432"} refused the connection: database "${name}" does not exist; check DATABASE_URL`,
      );
    });

    // The service runs with trust authentication; the embedded cluster checks passwords.
    it.runIf(inject("databaseKind") === "embedded")("should report a wrong password without printing it", async () => {
      const url = new URL(databaseUrl());
      url.password = SECRET;
      const line = await openLine(settings(url.toString()));
      expect(line).toBe(
        `The database at ${url.hostname}:${url.port} refused the connection: password authentication failed for user "${url.username}"; check DATABASE_URL`,
      );
    });
  });

  describe("other failures", () => {
    it("should print configuration problems under one heading, one per line", () => {
      expect(startupErrorLine(new ConfigError("PORT must be a port number (0–65535)\nLOG_LEVEL must be one of …"))).toBe(
        "Invalid configuration:\nPORT must be a port number (0–65535)\nLOG_LEVEL must be one of …",
      );
    });

    it("should print an embedded database or migration problem as its own message", () => {
      const inUse = "The embedded database in ./.data/postgres is in use by another process (pid 42); stop it or set DATABASE_URL";
      expect(startupErrorLine(new EmbeddedPostgresError(inUse))).toBe(inUse);
      const modified = "Migration 1_init was modified after it was applied. Add a new migration instead of editing an applied one.";
      expect(startupErrorLine(new MigrationError(modified))).toBe(modified);
    });

    it("should print anything else as one line, without a stack or a URL's password", () => {
      const error = new Error(`could not use postgresql://app:${SECRET}@db.example.com/app\n  while starting`);
      const line = startupErrorLine(error);
      expect(line).toBe("Failed to start: could not use postgresql://app:***@db.example.com/app while starting");
      expect(startupErrorLine(undefined)).toBe("Failed to start: undefined");
    });
  });
});
