import { randomBytes } from "node:crypto";
import { afterAll, describe, expect, it, vi } from "vitest";
import { freePort } from "../../src/db/embedded.js";
import { databaseUrl, newUserId } from "../helpers/db.js";
import { runScript, stopAll, type Program } from "../helpers/process.js";
import { TEST_JWT_SECRET, tokenFor } from "../helpers/tokens.js";
import { wsClient } from "../helpers/ws-client.js";

/** The database URL with a password in it: the embedded cluster's real one, or one the trust-auth service ignores. */
function urlWithPassword(): { url: string; password: string } {
  const url = new URL(databaseUrl());
  if (url.password === "") url.password = `db-secret-${randomBytes(8).toString("hex")}`;
  return { url: url.toString(), password: decodeURIComponent(url.password) };
}

describe("logs at LOG_LEVEL=trace", () => {
  const started: Program[] = [];
  afterAll(() => stopAll(started));

  it("should never contain a token, the Authorization header, COHERE_API_KEY, the JWT secret or the database password", async () => {
    const { url, password } = urlWithPassword();
    const cohereKey = `cohere-secret-${randomBytes(8).toString("hex")}`;
    const port = await freePort();
    const server = runScript(
      "src/main.ts",
      {
        env: {
          PORT: String(port),
          DATABASE_URL: url,
          AUTH_JWT_SECRET: TEST_JWT_SECRET,
          COHERE_API_KEY: cohereKey,
          // Nothing listens there: the chat turn fails after its retries, and logs why.
          COHERE_BASE_URL: `http://127.0.0.1:${await freePort()}`,
          COHERE_TIMEOUT_MS: "500",
          LOG_LEVEL: "trace",
        },
      },
      started,
    );
    await server.waitFor(/GraphQL API ready/, 60_000);
    const base = `http://127.0.0.1:${port}`;
    const token = await tokenFor(newUserId("secrecy"));
    const forged = await tokenFor(newUserId("secrecy"), { secret: `${TEST_JWT_SECRET}-other` });
    const gql = (query: string, bearer: string) =>
      fetch(`${base}/graphql`, {
        method: "POST",
        headers: { "content-type": "application/json", authorization: `Bearer ${bearer}` },
        body: JSON.stringify({ query }),
      }).then((response) => response.text());

    await gql(`mutation { addTask(input: { title: "secret-free" }) { id } }`, token);
    await gql(`{ tasks { edges { node { id } } } }`, forged);
    const chat = await gql(`mutation { sendMessage(input: { content: "hello" }) { reply { id } } }`, token);
    expect(chat).toContain("ASSISTANT_UNAVAILABLE");
    await fetch(`${base}/mcp`, {
      method: "POST",
      headers: { "content-type": "application/json", accept: "application/json, text/event-stream", authorization: `Bearer ${token}` },
      body: JSON.stringify({ jsonrpc: "2.0", id: 1, method: "tools/list" }),
    });
    const ws = wsClient(`ws://127.0.0.1:${port}/graphql`, token);
    const sub = ws.subscribe(`subscription { taskChanged { kind } }`);
    // The subscription is in place at some point after connecting; a change then reaches it.
    await vi.waitFor(
      async () => {
        await gql(`mutation { addTask(input: { title: "pushed" }) { id } }`, token);
        // Fails with "no subscription message within 500 ms" until a change reaches it.
        await sub.next(500);
      },
      { timeout: 10_000, interval: 20 },
    );
    await ws.dispose();
    expect((await server.stop()).code).toBe(0);

    const output = server.stdout() + server.stderr();
    expect(output).toMatch(/"msg":"request"/);
    for (const secret of [token, token.split(".")[2] ?? token, forged, cohereKey, TEST_JWT_SECRET, password]) {
      expect(output).not.toContain(secret);
    }
    expect(output).not.toMatch(/Bearer\s/i);
  }, 120_000);
});
