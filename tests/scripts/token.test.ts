import { spawn } from "node:child_process";
import { chmod, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { decodeJwt } from "jose";
import { afterAll, beforeAll, describe, it } from "vitest";
import { newUserId } from "../helpers/db.js";
import { ROOT, runScript, stopAll, type Exit, type Program } from "../helpers/process.js";
import { startTestServer, type TestServer } from "../helpers/server.js";
import { TEST_JWT_SECRET, testVerifier } from "../helpers/tokens.js";

const JWT = /^[\w-]+\.[\w-]+\.[\w-]+$/;
const TASKS = "{ tasks { edges { node { id } } } }";

/** `npm run -s token -- …` exactly as the README says, from the repository. */
function npmToken(args: string[], env: Record<string, string>): Promise<Exit & { stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn("npm", ["run", "-s", "token", "--", ...args], { cwd: ROOT, env: { ...process.env, ...env }, stdio: "pipe" });
    let stdout = "";
    let stderr = "";
    child.stdout.setEncoding("utf8").on("data", (chunk: string) => void (stdout += chunk));
    child.stderr.setEncoding("utf8").on("data", (chunk: string) => void (stderr += chunk));
    child.on("error", reject);
    child.on("close", (code, signal) => resolve({ code, signal, stdout, stderr }));
  });
}

describe("npm run token", () => {
  const started: Program[] = [];
  let server: TestServer;
  let checking: TestServer;
  let envDir: string;

  beforeAll(async () => {
    server = await startTestServer();
    // A server that also checks the issuer and audience.
    checking = await startTestServer({
      verifier: testVerifier({ issuer: "https://auth.test", audience: "todo-api" }),
    });
    envDir = await mkdtemp(path.join(tmpdir(), "todo-token-"));
    await chmod(envDir, 0o755);
    await writeFile(
      path.join(envDir, ".env"),
      `AUTH_JWT_SECRET=${TEST_JWT_SECRET}\nAUTH_JWT_ISSUER=https://auth.test\nAUTH_JWT_AUDIENCE=todo-api\n`,
      { mode: 0o600 },
    );
  });

  afterAll(async () => {
    await stopAll(started);
    await server?.close();
    await checking?.close();
    if (envDir) await rm(envDir, { recursive: true, force: true });
  });

  it.concurrent("should print only a JWT, valid for an hour, that the API accepts for --sub", async ({ expect }) => {
    const sub = newUserId("token-cli");
    const result = await npmToken(["--sub", sub], { AUTH_JWT_SECRET: TEST_JWT_SECRET });
    expect(result).toMatchObject({ code: 0, signal: null, stderr: "" });
    expect(result.stdout).toMatch(/^[\w-]+\.[\w-]+\.[\w-]+\n$/);
    const token = result.stdout.trim();
    const claims = decodeJwt(token);
    expect(claims.sub).toBe(sub);
    expect((claims.exp ?? 0) - (claims.iat ?? 0)).toBe(3600);

    const added = await server.request<{ addTask: { title: string } }>(
      'mutation { addTask(input: { title: "Made with npm run token" }) { title } }',
      {},
      token,
    );
    expect(added).toEqual({ status: 200, data: { addTask: { title: "Made with npm run token" } } });
    expect(await server.db.task.count({ where: { userId: sub } })).toBe(1);
  });

  it.concurrent("should take the secret, issuer and audience from .env, and --ttl", async ({ expect }) => {
    const sub = newUserId("token-env");
    const program = runScript("scripts/token.ts", { cwd: envDir, args: ["--sub", sub, "--ttl", "15m"] }, started);
    expect(await program.exit()).toEqual({ code: 0, signal: null });
    expect(program.stderr()).toBe("");
    const token = program.stdout().trim();
    expect(token).toMatch(JWT);
    const claims = decodeJwt(token);
    expect(claims).toMatchObject({ sub, iss: "https://auth.test", aud: "todo-api" });
    expect((claims.exp ?? 0) - (claims.iat ?? 0)).toBe(900);
    expect(await checking.request(TASKS, {}, token)).toEqual({ status: 200, data: { tasks: { edges: [] } } });
  });

  const refusals: { name: string; args: string[]; env: Record<string, string>; line: string }[] = [
    {
      name: "only AUTH_JWKS_URL is configured",
      args: ["--sub", "alice"],
      env: { AUTH_JWKS_URL: "https://auth.example.com/.well-known/jwks.json" },
      line:
        "AUTH_JWKS_URL is set: tokens for a JWKS issuer come from that issuer, which holds the signing key; " +
        "this command signs only with AUTH_JWT_SECRET",
    },
    {
      name: "neither AUTH_JWT_SECRET nor AUTH_JWKS_URL is set",
      args: ["--sub", "alice"],
      env: {},
      line:
        "AUTH_JWT_SECRET is not set: set it (at least 32 bytes) to the secret the server uses, in the environment or .env; " +
        "the dev server's random per-process secret cannot be used, as no other process knows it",
    },
    {
      name: "--sub is missing",
      args: ["--ttl", "1h"],
      env: { AUTH_JWT_SECRET: TEST_JWT_SECRET },
      line: "--sub is required: the user id the token is for; usage: npm run -s token -- --sub <user id> [--ttl 1h]",
    },
    {
      name: "--ttl is not a duration",
      args: ["--sub", "alice", "--ttl", "soon"],
      env: { AUTH_JWT_SECRET: TEST_JWT_SECRET },
      line: '--ttl must be a duration from 1 second to 365 days, in seconds ("3600") or with a unit s, m, h or d ("1h"), got "soon"',
    },
    {
      name: "--ttl is longer than a year",
      args: ["--sub", "alice", "--ttl", "366d"],
      env: { AUTH_JWT_SECRET: TEST_JWT_SECRET },
      line: '--ttl must be a duration from 1 second to 365 days, in seconds ("3600") or with a unit s, m, h or d ("1h"), got "366d"',
    },
    {
      name: "the configuration is invalid",
      args: ["--sub", "alice"],
      env: { AUTH_JWT_SECRET: "too-short" },
      line: "Invalid configuration:\nAUTH_JWT_SECRET must be at least 32 bytes",
    },
  ];

  it.concurrent.for(refusals)("should refuse with one clear line and exit code 1 when $name", async ({ args, env, line }, { expect }) => {
    const program = runScript("scripts/token.ts", { args, env }, started);
    expect(await program.exit()).toEqual({ code: 1, signal: null });
    expect(program.stderr()).toBe(`${line}\n`);
    expect(program.stdout()).toBe("");
  });
});
