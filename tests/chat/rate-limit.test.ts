import { setTimeout as sleep } from "node:timers/promises";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Db } from "../../src/db/client.js";
import { takeToken, type RateLimit } from "../../src/domain/rate-limits.js";
import { cohereAssistant, sendMessage, type SendResponse } from "../helpers/chat.js";
import { newUserId, testDb } from "../helpers/db.js";
import { startFakeCohere, textReply, type FakeCohere } from "../helpers/fake-cohere.js";
import { newUser, startTestServer, type TestServer, type TestUser } from "../helpers/server.js";

/**
 * One token a minute: no test here lasts long enough for a refill to add a
 * whole token, so "burst, then refused" holds however slow the machine is.
 */
const SLOW: RateLimit = { perMinute: 1, burst: 5 };
/** Whole seconds a refusal under SLOW may ask for at most: one token's refill time. */
const SLOW_MAX_WAIT = Math.ceil(60 / SLOW.perMinute);

/** What the user has stored: a refused send must add to neither. */
async function stored(db: Db, userId: string): Promise<{ conversations: number; messages: number }> {
  const [conversations, messages] = await Promise.all([db.conversation.count({ where: { userId } }), db.message.count({ where: { userId } })]);
  return { conversations, messages };
}

function expectAccepted(response: SendResponse): void {
  expect(response.errors).toBeUndefined();
  expect(response.data?.sendMessage?.reply?.content).toBe("Noted.");
}

/** Asserts a RATE_LIMITED refusal and returns its retryAfter. */
function expectRateLimited(response: SendResponse, maxWait = SLOW_MAX_WAIT): number {
  expect(response.data ?? null).toBeNull();
  expect(response.errors).toHaveLength(1);
  const error = response.errors![0]!;
  expect(error.path).toEqual(["sendMessage"]);
  expect(error.extensions?.code).toBe("RATE_LIMITED");
  const retryAfter = error.extensions?.retryAfter as number;
  expect(Number.isInteger(retryAfter)).toBe(true);
  expect(retryAfter).toBeGreaterThanOrEqual(1);
  expect(retryAfter).toBeLessThanOrEqual(maxWait);
  expect(error.message).toBe(`Too many messages: try again in ${retryAfter} second${retryAfter === 1 ? "" : "s"}`);
  return retryAfter;
}

function isRateLimited(response: SendResponse): boolean {
  return response.errors?.[0]?.extensions?.code === "RATE_LIMITED";
}

describe("sendMessage rate limit", () => {
  let fake: FakeCohere;
  /** Two instances on the same database, each with its own client and pool, both limited by SLOW. */
  let a: TestServer;
  let b: TestServer;
  const servers: TestServer[] = [];

  async function serve(rateLimit: RateLimit | undefined): Promise<TestServer> {
    const server = await startTestServer({ assistant: cohereAssistant(fake, { rateLimit }) });
    servers.push(server);
    return server;
  }

  /** Sends `count` messages one after another, each accepted. */
  async function sendAccepted(user: TestUser, count: number, server?: TestServer): Promise<void> {
    for (let i = 0; i < count; i += 1) expectAccepted(await sendMessage(user, { content: `message ${i + 1}` }, server));
  }

  beforeAll(async () => {
    fake = await startFakeCohere();
    fake.setFallback(() => textReply("Noted."));
    a = await serve(SLOW);
    b = await serve(SLOW);
  });
  afterAll(async () => {
    for (const server of servers) await server.close();
    await fake?.close();
  });

  it("should refuse the message after the burst with RATE_LIMITED and retryAfter, storing nothing and not calling the model", async () => {
    const user = await newUser(a);
    await sendAccepted(user, SLOW.burst - 1);
    const last = await sendMessage(user, { content: "the last one the burst allows", clientMessageId: "m-last" });
    expectAccepted(last);
    const conversationId = last.data!.sendMessage!.conversation.id;
    const before = await stored(a.db, user.id);
    const modelCalls = fake.requests.length;

    expectRateLimited(await sendMessage(user, { content: "one too many" }));
    expectRateLimited(await sendMessage(user, { content: "one too many", conversationId, clientMessageId: "m-over" }));

    expect(await stored(a.db, user.id)).toEqual(before);
    expect(await a.db.message.count({ where: { userId: user.id, clientMessageId: "m-over" } })).toBe(0);
    expect(fake.requests.length).toBe(modelCalls);
  });

  it("should charge a retry with an existing clientMessageId like any other send", async () => {
    const user = await newUser(a);
    const first = await sendMessage(user, { content: "hello", clientMessageId: "same" });
    expectAccepted(first);
    for (let i = 1; i < SLOW.burst; i += 1) {
      const again = await sendMessage(user, { content: "hello", clientMessageId: "same" });
      expectAccepted(again);
      expect(again.data!.sendMessage!.userMessage.id).toBe(first.data!.sendMessage!.userMessage.id);
    }
    expectRateLimited(await sendMessage(user, { content: "hello", clientMessageId: "same" }));
  });

  it("should not charge a send refused for invalid input", async () => {
    const user = await newUser(a);
    for (let i = 0; i < SLOW.burst + 1; i += 1) {
      const response = await sendMessage(user, { content: "   " });
      expect(response.errors?.[0]?.extensions).toMatchObject({ code: "BAD_USER_INPUT", field: "input.content" });
    }
    await sendAccepted(user, SLOW.burst);
  });

  it("should leave another user unaffected", async () => {
    const limited = await newUser(a);
    const other = await newUser(a);
    await sendAccepted(limited, SLOW.burst);
    expectRateLimited(await sendMessage(limited, { content: "over" }));

    await sendAccepted(other, SLOW.burst);

    expectRateLimited(await sendMessage(limited, { content: "still over" }));
  });

  it("should share one bucket between two instances on the same database", async () => {
    const user = await newUser(a);
    const half = Math.ceil(SLOW.burst / 2);
    await sendAccepted(user, half, a);
    await sendAccepted(user, SLOW.burst - half, b);

    expectRateLimited(await sendMessage(user, { content: "over on b" }, b));
    expectRateLimited(await sendMessage(user, { content: "over on a" }, a));
    expect(await stored(a.db, user.id)).toEqual({ conversations: SLOW.burst, messages: 2 * SLOW.burst });
  });

  it("should let exactly the burst through when many sends arrive at once on two instances", async () => {
    const user = await newUser(a);
    const attempts = 4 * SLOW.burst;

    const responses = await Promise.all(
      Array.from({ length: attempts }, (_, i) => sendMessage(user, { content: `at once ${i}` }, i % 2 === 0 ? a : b)),
    );

    const accepted = responses.filter((response) => !isRateLimited(response));
    const refused = responses.filter(isRateLimited);
    expect(accepted).toHaveLength(SLOW.burst);
    for (const response of accepted) expectAccepted(response);
    expect(refused).toHaveLength(attempts - SLOW.burst);
    for (const response of refused) expectRateLimited(response);
    expect(await stored(a.db, user.id)).toEqual({ conversations: SLOW.burst, messages: 2 * SLOW.burst });
  });

  it("should accept a message again once retryAfter seconds have passed", async () => {
    // A token a second: a refusal asks for a short wait. Burst 1, so a send refused right
    // after an accepted one is likely; the loop covers a machine slow enough to refill between.
    const limit: RateLimit = { perMinute: 60, burst: 1 };
    const server = await serve(limit);
    const user = await newUser(server);
    let refusal: SendResponse | undefined;
    for (let i = 0; i < 20 && refusal === undefined; i += 1) {
      const response = await sendMessage(user, { content: `probe ${i}` });
      if (isRateLimited(response)) refusal = response;
      else expectAccepted(response);
    }
    expect(refusal).toBeDefined();
    const retryAfter = expectRateLimited(refusal!, Math.ceil(60 / limit.perMinute));

    await sleep(retryAfter * 1000);

    expectAccepted(await sendMessage(user, { content: "after waiting" }));
  });

  it("should not limit at all when the rate limit is off", async () => {
    const unlimited = await serve(undefined);
    const zero = await serve({ perMinute: 0, burst: 1 });
    for (const server of [unlimited, zero]) {
      const user = await newUser(server);
      const responses = await Promise.all(Array.from({ length: 2 * SLOW.burst }, (_, i) => sendMessage(user, { content: `free ${i}` })));
      for (const response of responses) expectAccepted(response);
      // Off means no bucket either: no write per send.
      expect(await server.db.rateLimitBucket.count({ where: { userId: user.id } })).toBe(0);
    }
  });
});

describe("takeToken", () => {
  let first: Db;
  let second: Db;

  beforeAll(() => {
    first = testDb({ poolSize: 10 });
    second = testDb({ poolSize: 10 });
  });
  afterAll(async () => {
    await first?.$disconnect();
    await second?.$disconnect();
  });

  it("should never let more than the burst through under concurrent takes from two clients", async () => {
    const userId = newUserId();
    const outcomes = await Promise.all(Array.from({ length: 60 }, (_, i) => takeToken(i % 2 === 0 ? first : second, userId, "race", SLOW)));
    expect(outcomes.filter((outcome) => outcome.allowed)).toHaveLength(SLOW.burst);
    for (const outcome of outcomes) {
      if (outcome.allowed) continue;
      expect(outcome.retryAfterSeconds).toBeGreaterThanOrEqual(1);
      expect(outcome.retryAfterSeconds).toBeLessThanOrEqual(SLOW_MAX_WAIT);
    }
  });

  it("should refill by elapsed time, capped at the burst", async () => {
    const userId = newUserId();
    const limit: RateLimit = { perMinute: 1, burst: 3 };
    expect(await takeToken(first, userId, "refill", limit)).toEqual({ allowed: true });
    // An hour idle, as the database's clock sees it: far more than the burst's worth of refill.
    await first.$executeRaw`
      UPDATE rate_limit_buckets SET updated_at = updated_at - interval '1 hour' WHERE user_id = ${userId} AND name = 'refill'`;

    const outcomes = [];
    for (let i = 0; i < limit.burst + 1; i += 1) outcomes.push(await takeToken(first, userId, "refill", limit));

    expect(outcomes.map((outcome) => outcome.allowed)).toEqual([true, true, true, false]);
  });

  it("should compute retryAfter from the stored balance", async () => {
    const userId = newUserId();
    const limit: RateLimit = { perMinute: 1, burst: 1 };
    expect(await takeToken(first, userId, "wait", limit)).toEqual({ allowed: true });
    // Half a token: the next one is half of the minute a token takes away.
    await first.$executeRaw`
      UPDATE rate_limit_buckets SET tokens = 0.5, updated_at = clock_timestamp() WHERE user_id = ${userId} AND name = 'wait'`;

    const outcome = await takeToken(first, userId, "wait", limit);

    expect(outcome.allowed).toBe(false);
    const seconds = outcome.allowed ? 0 : outcome.retryAfterSeconds;
    expect(Number.isInteger(seconds)).toBe(true);
    expect(seconds).toBeLessThanOrEqual(30);
    // Well above the floor of 1: it comes from the balance (a stalled machine refills a little meanwhile).
    expect(seconds).toBeGreaterThan(20);
  });

  it("should keep buckets of different names apart", async () => {
    const userId = newUserId();
    const limit: RateLimit = { perMinute: 1, burst: 1 };
    expect(await takeToken(first, userId, "one", limit)).toEqual({ allowed: true });
    expect((await takeToken(first, userId, "one", limit)).allowed).toBe(false);
    expect(await takeToken(first, userId, "two", limit)).toEqual({ allowed: true });
  });

  it("should refuse a limit that could never allow anything", async () => {
    await expect(takeToken(first, newUserId(), "bad", { perMinute: 0, burst: 1 })).rejects.toThrow(RangeError);
    await expect(takeToken(first, newUserId(), "bad", { perMinute: 1, burst: 0 })).rejects.toThrow(RangeError);
  });
});
