import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { createServer, type Server } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { freePort } from "../../src/db/embedded.js";
import { databaseUrl, newUserId } from "../helpers/db.js";
import { runScript, stopAll, type Program } from "../helpers/process.js";
import { TEST_JWT_SECRET, tokenFor } from "../helpers/tokens.js";

/** A password no output may contain. */
const SECRET = `pw-${randomBytes(12).toString("hex")}`;

/** The postgres system user's ids, to run a program unprivileged when the tests run as root. */
function postgresUser(): { uid: number; gid: number } | undefined {
  try {
    const id = (flag: string) => Number(execFileSync("id", [flag, "postgres"], { encoding: "utf8" }).trim());
    return { uid: id("-u"), gid: id("-g") };
  } catch {
    return undefined;
  }
}

function unprivilegedPortStart(): number {
  try {
    return Number(readFileSync("/proc/sys/net/ipv4/ip_unprivileged_port_start", "utf8").trim());
  } catch {
    return 1024;
  }
}

const isRoot = process.getuid?.() === 0;
const runAs = isRoot ? postgresUser() : {};
/** Port 80 is refused only where low ports are privileged, to a process that is not root. */
const canTestPrivilegedPort = process.platform === "linux" && unprivilegedPortStart() > 80 && runAs !== undefined;

// Each entry point as a real process: the exit code and every byte it prints.
// How each kind of failure is worded is covered in-process by startup-errors.test.ts.
describe("start-up failures of the programs", () => {
  const started: Program[] = [];
  let occupied: Server;
  let occupiedPort: number;
  let closedPort: number;

  beforeAll(async () => {
    occupied = createServer();
    await new Promise<void>((resolve) => occupied.listen(0, "127.0.0.1", resolve));
    occupiedPort = (occupied.address() as { port: number }).port;
    closedPort = await freePort();
  });

  afterAll(async () => {
    await stopAll(started);
    await new Promise((resolve) => occupied?.close(resolve));
  });

  /** Runs the program to its end and expects exit code 1 with exactly `line` on stderr, nothing on stdout, no secret. */
  async function expectRefusal(program: Program, line: string | RegExp): Promise<void> {
    const exit = await program.exit();
    expect(exit).toEqual({ code: 1, signal: null });
    const stderr = program.stderr();
    if (typeof line === "string") expect(stderr).toBe(`${line}\n`);
    else expect(stderr).toMatch(new RegExp(`^${line.source}\\n$`));
    expect(program.stdout()).toBe("");
    expect(stderr + program.stdout()).not.toContain(SECRET);
  }

  it.concurrent("should say PORT is in use, in one line, when another process holds it", async () => {
    const server = runScript("src/main.ts", { env: { PORT: String(occupiedPort), HOST: "127.0.0.1", DATABASE_URL: databaseUrl() } }, started);
    await expectRefusal(server, `PORT ${occupiedPort} is in use on 127.0.0.1; set PORT to a free port`);
  });

  it.runIf(canTestPrivilegedPort).concurrent("should say a privileged PORT needs another value", async () => {
    const server = runScript("src/main.ts", { env: { PORT: "80", DATABASE_URL: databaseUrl() }, ...runAs }, started);
    await expectRefusal(server, "PORT 80 is privileged and this process may not listen on it; set PORT to 1024 or above");
  });

  it.concurrent("should name the database's host and port, never its password, when nothing listens there", async () => {
    const url = `postgresql://app:${SECRET}@127.0.0.1:${closedPort}/nowhere`;
    const server = runScript("src/main.ts", { env: { PORT: "0", DATABASE_URL: url } }, started);
    await expectRefusal(server, `Cannot reach the database at 127.0.0.1:${closedPort} (ECONNREFUSED); check DATABASE_URL`);
  });

  it.concurrent("should report an unreachable database the same way from npm run mcp, with nothing on stdout", async () => {
    const url = `postgresql://app:${SECRET}@127.0.0.1:${closedPort}/nowhere`;
    const token = await tokenFor(newUserId("startup-mcp"));
    const env = { DATABASE_URL: url, AUTH_JWT_SECRET: TEST_JWT_SECRET, MCP_AUTH_TOKEN: token };
    const mcp = runScript("src/boot/mcp-stdio.ts", { env }, started);
    await expectRefusal(mcp, `Cannot reach the database at 127.0.0.1:${closedPort} (ECONNREFUSED); check DATABASE_URL`);
  });

  it.concurrent("should report an unreachable database the same way from npm run db:migrate", async () => {
    const url = `postgresql://app:${SECRET}@127.0.0.1:${closedPort}/nowhere`;
    const migrate = runScript("scripts/migrate.ts", { env: { DATABASE_URL: url } }, started);
    await expectRefusal(migrate, `Cannot reach the database at 127.0.0.1:${closedPort} (ECONNREFUSED); check DATABASE_URL`);
  });
});
