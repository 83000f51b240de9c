import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { exportJWK, exportSPKI, generateKeyPair, SignJWT, UnsecuredJWT, type CryptoKey, type JWK } from "jose";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createVerifier, signHs256 } from "../../src/auth/verifier.js";
import type { Db } from "../../src/db/client.js";
import { newUserId, testDb } from "../helpers/db.js";
import { capturingLogger, newUser, startTestServer, type GraphQLResponse, type TestServer } from "../helpers/server.js";
import { TEST_JWT_SECRET, tokenFor } from "../helpers/tokens.js";

const TASKS = `{ tasks { edges { node { id title } } } }`;
const ADD_TASK = `mutation { addTask(input: { title: "Should not exist" }) { id } }`;
const OTHER_SECRET = `other-${crypto.randomUUID()}-${crypto.randomUUID()}`;

/** POSTs with exactly the headers given, so the Authorization header can be anything (or absent). */
async function rawRequest(url: string, query: string, authorization: string | undefined): Promise<GraphQLResponse> {
  const headers: Record<string, string> = { "content-type": "application/json", accept: "application/graphql-response+json" };
  if (authorization !== undefined) headers.authorization = authorization;
  const response = await fetch(url, { method: "POST", headers, body: JSON.stringify({ query }) });
  return { ...((await response.json()) as GraphQLResponse), status: response.status };
}

function expectUnauthenticated(response: GraphQLResponse): void {
  expect(response.status).toBe(401);
  expect(response.data ?? null).toBeNull();
  expect(response.errors).toHaveLength(1);
  expect(response.errors?.[0]?.extensions?.code).toBe("UNAUTHENTICATED");
  const text = JSON.stringify(response);
  expect(text).not.toMatch(/\\n\s+at\s/);
  expect(text).not.toMatch(/"stack"/);
}

function hs(alg: "HS256" | "HS384" | "HS512", secret: string, sub: string | undefined): Promise<string> {
  let jwt = new SignJWT({}).setProtectedHeader({ alg, typ: "JWT" }).setIssuedAt().setExpirationTime("1h");
  if (sub !== undefined) jwt = jwt.setSubject(sub);
  return jwt.sign(new TextEncoder().encode(secret));
}

describe("authentication with an HS256 secret", () => {
  let server: TestServer;

  beforeAll(async () => {
    server = await startTestServer();
  });
  afterAll(async () => {
    await server.close();
  });

  /** A rejected request reads nothing and, as a mutation, writes nothing for the token's subject. */
  async function expectRejected(authorization: string | undefined, userId?: string): Promise<void> {
    expectUnauthenticated(await rawRequest(server.url, TASKS, authorization));
    expectUnauthenticated(await rawRequest(server.url, ADD_TASK, authorization));
    if (userId !== undefined) expect(await server.db.task.count({ where: { userId } })).toBe(0);
  }

  it("should accept a valid token and act as its subject", async () => {
    const user = await newUser(server);
    const added = await user.gql(`mutation { addTask(input: { title: "Mine" }) { id } }`);
    expect(added.status).toBe(200);
    expect(added.errors).toBeUndefined();
    const listed = await rawRequest(server.url, TASKS, `Bearer ${user.token}`);
    expect(listed.status).toBe(200);
    expect(listed.errors).toBeUndefined();
    expect(listed.data?.tasks.edges).toEqual([{ node: { id: added.data?.addTask.id, title: "Mine" } }]);
    expect(await server.db.task.count({ where: { userId: user.id } })).toBe(1);
  });

  it("should reject a request without an Authorization header", async () => {
    await expectRejected(undefined);
    const response = await rawRequest(server.url, TASKS, undefined);
    expect(response.errors?.[0]?.message).toMatch(/Authorization/);
  });

  it("should reject an empty Authorization header", async () => {
    await expectRejected("");
    await expectRejected("   ");
  });

  it("should reject a scheme other than Bearer", async () => {
    const userId = newUserId();
    const token = await tokenFor(userId);
    await expectRejected(`Basic ${Buffer.from("user:pass").toString("base64")}`, userId);
    await expectRejected(`Token ${token}`, userId);
    await expectRejected(token, userId);
    await expectRejected("Bearer", userId);
    await expectRejected(`Bearer ${token} extra`, userId);
  });

  it("should reject a malformed token", async () => {
    await expectRejected("Bearer not-a-jwt");
    await expectRejected("Bearer a.b.c");
    await expectRejected(`Bearer ${Buffer.from('{"alg":"HS256"}').toString("base64url")}..`);
  });

  it("should reject an expired token", async () => {
    const userId = newUserId();
    const expired = await signHs256(TEST_JWT_SECRET, { sub: userId, expiresIn: Math.floor(Date.now() / 1000) - 60 });
    await expectRejected(`Bearer ${expired}`, userId);
    const response = await rawRequest(server.url, TASKS, `Bearer ${expired}`);
    expect(response.errors?.[0]?.message).toMatch(/expired/);
  });

  it("should reject a token signed with another secret", async () => {
    const userId = newUserId();
    await expectRejected(`Bearer ${await tokenFor(userId, { secret: OTHER_SECRET })}`, userId);
  });

  it("should reject HS384 and HS512 tokens signed with the right secret", async () => {
    for (const alg of ["HS384", "HS512"] as const) {
      const userId = newUserId();
      await expectRejected(`Bearer ${await hs(alg, TEST_JWT_SECRET, userId)}`, userId);
    }
  });

  it("should reject an unsigned alg: none token", async () => {
    const userId = newUserId();
    const unsigned = new UnsecuredJWT({}).setSubject(userId).setIssuedAt().setExpirationTime("1h").encode();
    expect(unsigned.endsWith(".")).toBe(true);
    await expectRejected(`Bearer ${unsigned}`, userId);
  });

  it("should reject a token without a subject", async () => {
    await expectRejected(`Bearer ${await hs("HS256", TEST_JWT_SECRET, undefined)}`);
    await expectRejected(`Bearer ${await hs("HS256", TEST_JWT_SECRET, "")}`);
    const response = await rawRequest(server.url, TASKS, `Bearer ${await hs("HS256", TEST_JWT_SECRET, undefined)}`);
    expect(response.errors?.[0]?.message).toMatch(/sub/);
  });
});

describe("authentication with a JWKS", () => {
  const ISSUER = "https://issuer.test";
  const AUDIENCE = "todo-api";
  const KID = "test-key-1";
  let jwksServer: Server;
  let server: TestServer;
  let privateKey: CryptoKey;
  let publicKey: CryptoKey;
  let otherPrivateKey: CryptoKey;

  beforeAll(async () => {
    ({ privateKey, publicKey } = await generateKeyPair("RS256"));
    ({ privateKey: otherPrivateKey } = await generateKeyPair("RS256"));
    const jwk: JWK = { ...(await exportJWK(publicKey)), kid: KID, alg: "RS256", use: "sig" };
    const body = JSON.stringify({ keys: [jwk] });
    jwksServer = createServer((_req, res) => {
      res.writeHead(200, { "content-type": "application/json" });
      res.end(body);
    });
    await new Promise<void>((resolve, reject) => {
      jwksServer.once("error", reject);
      jwksServer.listen(0, "127.0.0.1", () => resolve());
    });
    const { port } = jwksServer.address() as AddressInfo;
    const verifier = createVerifier({
      jwksUrl: `http://127.0.0.1:${port}/.well-known/jwks.json`,
      issuer: ISSUER,
      audience: AUDIENCE,
      jwtSecret: undefined,
      maxTokenAgeSeconds: undefined,
    });
    server = await startTestServer({ verifier });
  });
  afterAll(async () => {
    await server?.close();
    await new Promise<void>((resolve) => {
      if (!jwksServer?.listening) return resolve();
      jwksServer.close(() => resolve());
      jwksServer.closeAllConnections();
    });
  });

  function rs256(key: CryptoKey, claims: { sub: string; iss?: string; aud?: string; kid?: string; exp?: string | number }): Promise<string> {
    return new SignJWT({})
      .setProtectedHeader({ alg: "RS256", typ: "JWT", kid: claims.kid ?? KID })
      .setSubject(claims.sub)
      .setIssuer(claims.iss ?? ISSUER)
      .setAudience(claims.aud ?? AUDIENCE)
      .setIssuedAt()
      .setExpirationTime(claims.exp ?? "1h")
      .sign(key);
  }

  async function expectRejected(token: string, userId: string): Promise<GraphQLResponse> {
    const response = await rawRequest(server.url, TASKS, `Bearer ${token}`);
    expectUnauthenticated(response);
    expectUnauthenticated(await rawRequest(server.url, ADD_TASK, `Bearer ${token}`));
    expect(await server.db.task.count({ where: { userId } })).toBe(0);
    return response;
  }

  it("should accept a valid RS256 token and act as its subject", async () => {
    const userId = newUserId("jwks");
    const token = await rs256(privateKey, { sub: userId });
    const added = await rawRequest(server.url, `mutation { addTask(input: { title: "Via JWKS" }) { id title } }`, `Bearer ${token}`);
    expect(added.status).toBe(200);
    expect(added.errors).toBeUndefined();
    expect(added.data?.addTask.title).toBe("Via JWKS");
    const rows = await server.db.task.findMany({ where: { userId } });
    expect(rows.map((row) => row.title)).toEqual(["Via JWKS"]);
  });

  it("should reject a token from another issuer", async () => {
    const userId = newUserId("jwks");
    const response = await expectRejected(await rs256(privateKey, { sub: userId, iss: "https://evil.test" }), userId);
    expect(response.errors?.[0]?.message).toMatch(/iss/);
  });

  it("should reject a token for another audience", async () => {
    const userId = newUserId("jwks");
    const response = await expectRejected(await rs256(privateKey, { sub: userId, aud: "another-api" }), userId);
    expect(response.errors?.[0]?.message).toMatch(/aud/);
  });

  it("should reject an expired RS256 token", async () => {
    const userId = newUserId("jwks");
    await expectRejected(await rs256(privateKey, { sub: userId, exp: Math.floor(Date.now() / 1000) - 60 }), userId);
  });

  it("should reject a token signed by a key the JWKS does not publish", async () => {
    const userId = newUserId("jwks");
    await expectRejected(await rs256(otherPrivateKey, { sub: userId, kid: "unknown-kid" }), userId);
    // The same foreign key claiming the published kid fails its signature check.
    await expectRejected(await rs256(otherPrivateKey, { sub: userId }), userId);
  });

  it("should reject HS256 tokens, whatever the secret", async () => {
    const userId = newUserId("jwks");
    const hs256 = (secret: string | Uint8Array) =>
      new SignJWT({})
        .setProtectedHeader({ alg: "HS256", typ: "JWT", kid: KID })
        .setSubject(userId)
        .setIssuer(ISSUER)
        .setAudience(AUDIENCE)
        .setIssuedAt()
        .setExpirationTime("1h")
        .sign(typeof secret === "string" ? new TextEncoder().encode(secret) : secret);
    await expectRejected(await hs256(TEST_JWT_SECRET), userId);
    await expectRejected(await hs256(OTHER_SECRET), userId);
    // The classic key-confusion attack: the public key's PEM as an HMAC secret.
    await expectRejected(await hs256(await exportSPKI(publicKey)), userId);
  });

  it("should reject an unsigned alg: none token", async () => {
    const userId = newUserId("jwks");
    const unsigned = new UnsecuredJWT({}).setSubject(userId).setIssuer(ISSUER).setAudience(AUDIENCE).setIssuedAt().setExpirationTime("1h").encode();
    await expectRejected(unsigned, userId);
  });
});

describe("tokens in logs", () => {
  const { logger, lines } = capturingLogger();
  let server: TestServer;
  let brokenServer: TestServer;
  let brokenDb: Db;

  beforeAll(async () => {
    server = await startTestServer({ logger });
    // A database nothing listens on: every query fails, which the API must answer as an outage and log.
    brokenDb = testDb({ url: "postgresql://nobody@127.0.0.1:1/nothing", connectionTimeoutMs: 2000 });
    brokenServer = await startTestServer({ logger, db: brokenDb });
  });
  afterAll(async () => {
    await server?.close();
    await brokenServer?.close();
    await brokenDb?.$disconnect();
  });

  it("should never log the Authorization token, on success, failure or a database outage", async () => {
    const user = await newUser(server);
    const expired = await tokenFor(user.id, { expiresIn: Math.floor(Date.now() / 1000) - 60 });
    const forged = await tokenFor(user.id, { secret: OTHER_SECRET });
    const tokens = [user.token, expired, forged];

    const success = await user.gql(`mutation { addTask(input: { title: "Logged" }) { id } }`);
    expect(success.errors).toBeUndefined();
    const badInput = await user.gql(`mutation { addTask(input: { title: "" }) { id } }`);
    expect(badInput.errors?.[0]?.extensions?.code).toBe("BAD_USER_INPUT");
    expectUnauthenticated(await server.request(TASKS, {}, expired));
    expectUnauthenticated(await server.request(TASKS, {}, forged));
    expectUnauthenticated(await rawRequest(server.url, TASKS, `Basic ${user.token}`));

    const internal = await brokenServer.request(TASKS, {}, user.token);
    expect(internal.errors).toHaveLength(1);
    expect(internal.status).toBe(503);
    expect(internal.errors?.[0]?.extensions?.code).toBe("SERVICE_UNAVAILABLE");
    expect(JSON.stringify(internal)).not.toMatch(/prisma|ECONNREFUSED|127\.0\.0\.1|\\n\s+at\s/i);

    // The logger did capture these requests, and the internal error with its cause.
    expect(lines.filter((line) => line.includes('"msg":"request"')).length).toBeGreaterThanOrEqual(6);
    expect(lines.some((line) => line.includes('"level":40') && line.includes("database unavailable"))).toBe(true);

    for (const token of tokens) {
      const signature = token.split(".")[2] ?? "";
      expect(signature.length).toBeGreaterThan(20);
      for (const line of lines) {
        expect(line).not.toContain(token);
        expect(line).not.toContain(signature);
      }
    }
  });
});
