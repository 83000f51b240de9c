/**
 * B4: one sendMessage turn (the model calls add_task once, then answers)
 * against a zero-latency fake model (tests/helpers/fake-cohere.ts, through the
 * real cohere-ai SDK). Counts every SQL statement Prisma sends for the turn
 * (Prisma's query events, plus a BEGIN for each COMMIT, which it does not log) in a few turns
 * of their own, then times turns on a client without a query listener (production attaches
 * none: the events cost time, and take the task list off the pg pool), against the same
 * writes done with raw pg in the same order.
 * Each turn starts a new conversation, so every turn does the same work.
 */
import { randomUUID } from "node:crypto";
import type { AddressInfo } from "node:net";
import pg from "pg";
import { buildApp } from "../../src/server/app.js";
import { createVerifier, signHs256 } from "../../src/auth/verifier.js";
import { createCohereModel } from "../../src/chat/cohere.js";
import { loadConfig } from "../../src/boot/config.js";
import { createDb } from "../../src/db/client.js";
import { createLogger } from "../../src/lib/logger.js";
import { startFakeCohere, textReply, toolCallReply, type FakeCohere } from "../../tests/helpers/fake-cohere.js";
import { figure, median, type Figure } from "../lib/figure.js";
import type { BenchContext } from "../lib/scenario.js";

const TURNS = Number(process.env.BENCH_TURNS ?? 40);
const WARMUP = 5;
const GOALS = { statements: 10, ratio: 3 };

const SEND = "mutation Send($input: SendMessageInput!) { sendMessage(input: $input) { reply { id content } toolCalls { name result } } }";

/** The turns that count statements (Prisma's query events on); the timed turns run without a listener, as production does. */
const COUNTED_TURNS = 5;

/** The API in this process, on the bench's database and the fake model; `onQuery` turns Prisma's query events on. */
async function startTurnApp(ctx: BenchContext, fakeUrl: string, secret: string, onQuery?: (sql: string) => void) {
  const logger = createLogger("silent");
  const db = createDb({ url: ctx.url, driver: "pg", poolSize: 10, connectionTimeoutMs: 5000, onQuery });
  const app = buildApp({
    db,
    logger,
    verifier: createVerifier({ jwtSecret: secret, jwksUrl: undefined, issuer: undefined, audience: undefined, maxTokenAgeSeconds: undefined }),
    graphiql: false,
    http: loadConfig({ NODE_ENV: "production", AUTH_JWT_SECRET: secret }).http,
    listenUrl: ctx.url,
    assistant: {
      model: createCohereModel({ apiKey: "bench", baseUrl: fakeUrl }),
      modelName: "bench",
      maxSteps: 8,
      callTimeoutMs: 30_000,
      turnTimeoutMs: 120_000,
      clock: () => new Date(),
      logger,
      // On, as in production, but never the limit: its statement is part of a turn's cost.
      rateLimit: { perMinute: 1_000_000, burst: 1_000_000 },
    },
  });
  await app.start(0, "127.0.0.1");
  const url = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}/graphql`;
  return {
    url,
    stop: async () => {
      await app.stop();
      await db.$disconnect();
    },
  };
}

/** One sendMessage turn (the fake told to call add_task once, then answer); its elapsed ms. */
async function sendTurn(fake: FakeCohere, url: string, token: string, turn: number): Promise<number> {
  fake.enqueue(toolCallReply([{ name: "add_task", args: { title: `Bench task ${turn}` } }]), textReply(`Added Bench task ${turn}.`));
  const start = performance.now();
  const response = await fetch(url, {
    method: "POST",
    headers: { "content-type": "application/json", authorization: `Bearer ${token}` },
    body: JSON.stringify({ query: SEND, variables: { input: { content: `Add Bench task ${turn}` } } }),
  });
  const json = (await response.json()) as { data?: { sendMessage: { reply: unknown; toolCalls: unknown[] } }; errors?: unknown };
  const elapsed = performance.now() - start;
  if (json.errors || !json.data?.sendMessage.reply || json.data.sendMessage.toolCalls.length !== 1) {
    throw new Error(`B4: unexpected sendMessage answer: ${JSON.stringify(json)}`);
  }
  return elapsed;
}

/** Statements per turn, from Prisma's query events (BEGIN counted once per COMMIT, which Prisma does not log); BENCH_SHOW_SQL prints the last turn's. */
async function countStatements(ctx: BenchContext, fake: FakeCohere, secret: string, token: string): Promise<number[]> {
  let statements: { sql: string; at: number }[] = [];
  const app = await startTurnApp(ctx, fake.baseUrl, secret, (sql) => statements.push({ sql, at: performance.now() }));
  const counts: number[] = [];
  try {
    for (let turn = 0; turn < COUNTED_TURNS; turn += 1) {
      statements = [];
      const start = performance.now();
      const elapsed = await sendTurn(fake, app.url, token, turn);
      const sent = statements.map((statement) => statement.sql);
      counts.push(sent.length + sent.filter((sql) => /^\s*(COMMIT|ROLLBACK)\b/i.test(sql)).length);
      if (process.env.BENCH_SHOW_SQL && turn === COUNTED_TURNS - 1) {
        for (const { sql, at } of statements) ctx.log(`  SQL: +${(at - start).toFixed(1)} ms ${sql.replace(/\s+/g, " ").slice(0, 300)}`);
        ctx.log(`  answered at +${elapsed.toFixed(1)} ms`);
      }
    }
  } finally {
    await app.stop();
  }
  return counts;
}

export async function runTurn(ctx: BenchContext): Promise<Figure[]> {
  const secret = randomUUID() + randomUUID();
  const fake = await startFakeCohere();
  const userId = `bench-turn-${randomUUID()}`;
  const token = await signHs256(secret, { sub: userId, expiresIn: "1h" });
  const counts = await countStatements(ctx, fake, secret, token);

  const app = await startTurnApp(ctx, fake.baseUrl, secret);
  const oursMs: number[] = [];
  try {
    for (let turn = 0; turn < WARMUP + TURNS; turn += 1) {
      const elapsed = await sendTurn(fake, app.url, token, turn);
      if (turn >= WARMUP) oursMs.push(elapsed);
    }
  } finally {
    await app.stop();
  }

  // The model requests the SDK sent in the last turn, sent again as they were by the raw baseline.
  const modelBodies = fake.requests.slice(-2).map((request) => JSON.stringify(request.body));
  const rawMs = await rawTurns(ctx.url, userId);
  const rawWithModelMs = await rawTurns(ctx.url, userId, { fake, bodies: modelBodies });
  await fake.close();

  const perTurn = median(counts);
  const ours = median(oursMs);
  const raw = median(rawMs);
  const rawWithModel = median(rawWithModelMs);
  ctx.log(`  ${perTurn} statements per turn; ${ours.toFixed(1)} ms vs raw ${raw.toFixed(1)} ms (${rawWithModel.toFixed(1)} ms with the model calls)`);
  const writes =
    "the turn's writes (conversation, user message, turn, tool-call step, task, tool result, answer, turn end, last seq) as raw pg statements";
  const note = `median of ${TURNS} turns after ${WARMUP} warm-up; baseline: ${writes}, and between them the turn's two model calls as plain fetch() to the same fake (the SDK's own request bodies, each streamed answer read and its events parsed)`;
  return [
    figure({
      id: "B4",
      figure: "SQL statements per turn",
      ours: perTurn,
      baseline: RAW_STATEMENTS,
      unit: "statements",
      goal: `≤ ${GOALS.statements}`,
      met: perTurn <= GOALS.statements,
      note: `Prisma's query events during the sendMessage request (BEGIN counted once per COMMIT), including the reads that build the response, over ${COUNTED_TURNS} turns of their own (the timed turns run without a query listener, as production does); BENCH_SHOW_SQL=1 prints them`,
    }),
    figure({
      id: "B4",
      figure: "server time per turn: median",
      ours,
      baseline: rawWithModel,
      unit: "ms",
      goal: `ratio ≤ ${GOALS.ratio}`,
      met: ours / rawWithModel <= GOALS.ratio,
      note,
    }),
    figure({
      id: "B4",
      figure: "server time per turn against the writes alone: median",
      ours,
      baseline: raw,
      unit: "ms",
      goal: "—",
      note: `the same turns; baseline: ${writes} only, no model calls (the goal's baseline until 2026-12-07; it leaves out the two model calls no turn can skip)`,
    }),
  ];
}

/** The statements rawTurn sends. */
const RAW_STATEMENTS = 9;

/** The model calls of a raw turn: the fake to call, and the two request bodies to send it. */
interface RawModel {
  fake: FakeCohere;
  bodies: string[];
}

/** The same rows a turn writes, one raw statement each, in the order the turn writes them; with `model`, its two model calls between them. */
async function rawTurns(url: string, userId: string, model?: RawModel): Promise<number[]> {
  const sql = new pg.Client({ connectionString: url });
  await sql.connect();
  const samples: number[] = [];
  try {
    for (let turn = 0; turn < WARMUP + TURNS; turn += 1) {
      model?.fake.enqueue(toolCallReply([{ name: "add_task", args: { title: `Bench task ${turn}` } }]), textReply(`Added Bench task ${turn}.`));
      const start = performance.now();
      await rawTurn(sql, userId, turn, model);
      if (turn >= WARMUP) samples.push(performance.now() - start);
    }
  } finally {
    await sql.end();
  }
  return samples;
}

/** One model call as a raw client makes it: POST the body, read the server-sent events to the end, parse each. */
async function rawModelCall(model: RawModel | undefined, step: number): Promise<void> {
  if (!model) return;
  const response = await fetch(`${model.fake.baseUrl}/v2/chat`, {
    method: "POST",
    headers: { "content-type": "application/json", authorization: "Bearer bench" },
    body: model.bodies[step]!,
  });
  const text = await response.text();
  for (const line of text.split("\n")) if (line.startsWith("data: ") && line !== "data: [DONE]") JSON.parse(line.slice(6));
}

async function rawTurn(sql: pg.Client, userId: string, turn: number, model?: RawModel): Promise<void> {
  const content = `Add Bench task ${turn}`;
  const {
    rows: [conversation],
  } = await sql.query<{ id: string }>("INSERT INTO conversations (user_id, title) VALUES ($1, $2) RETURNING id", [userId, content]);
  const conversationId = conversation!.id;
  const {
    rows: [userMessage],
  } = await sql.query<{ id: string }>(
    "INSERT INTO messages (user_id, conversation_id, seq, role, content) VALUES ($1, $2, 1, 'user', $3) RETURNING id",
    [userId, conversationId, content],
  );
  const {
    rows: [turnRow],
  } = await sql.query<{ id: string }>(
    "INSERT INTO turns (user_id, conversation_id, user_message_id, status) VALUES ($1, $2, $3, 'RUNNING') RETURNING id",
    [userId, conversationId, userMessage!.id],
  );
  await rawModelCall(model, 0);
  await sql.query(
    "INSERT INTO messages (user_id, conversation_id, seq, role, content, tool_calls) VALUES ($1, $2, 2, 'assistant', 'I will use the tools.', $3)",
    [userId, conversationId, JSON.stringify([{ id: `call_${turn}`, name: "add_task", arguments: { title: `Bench task ${turn}` } }])],
  );
  const {
    rows: [task],
  } = await sql.query<{ id: string }>("INSERT INTO tasks (user_id, title) VALUES ($1, $2) RETURNING id", [userId, `Bench task ${turn}`]);
  await sql.query("INSERT INTO messages (user_id, conversation_id, seq, role, content, tool_call_id) VALUES ($1, $2, 3, 'tool', $3, $4)", [
    userId,
    conversationId,
    JSON.stringify({ id: task!.id, title: `Bench task ${turn}` }),
    `call_${turn}`,
  ]);
  await rawModelCall(model, 1);
  await sql.query("INSERT INTO messages (user_id, conversation_id, seq, role, content) VALUES ($1, $2, 4, 'assistant', $3)", [
    userId,
    conversationId,
    `Added Bench task ${turn}.`,
  ]);
  await sql.query("UPDATE turns SET status = 'COMPLETED', finished_at = now() WHERE id = $1", [turnRow!.id]);
  await sql.query("UPDATE conversations SET last_seq = 4 WHERE id = $1", [conversationId]);
}
