/**
 * B7 (also `npm run bench:stream`): a streamed answer, from the model to a
 * subscriber on another instance, against a raw baseline in the same process
 * on the same database.
 *
 *   subject:   fake model emits a delta → instance A's turn flushes it into the
 *              message row (≤ STREAM_FLUSH_MS later) → NOTIFY → instance B
 *              re-reads the row → messageStream event over graphql-ws
 *   baseline:  the same deltas on the same schedule, each sent as
 *              pg_notify(delta) → LISTEN → a bare ws message: the same bytes, no
 *              batching, no ORM, no GraphQL
 *
 * Goals: the subject's p99 latency ≤ 2 × the baseline's p99 + STREAM_FLUSH_MS,
 * and at most one database write per flush interval while a reply streams
 * (the INSERT that starts the row and each content UPDATE; the final
 * transaction is counted apart).
 */
import { randomUUID } from "node:crypto";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { createClient } from "graphql-ws";
import pg from "pg";
import { WebSocket, WebSocketServer } from "ws";
import { buildApp, type App } from "../../src/server/app.js";
import { createVerifier, signHs256 } from "../../src/auth/verifier.js";
import { createCohereModel } from "../../src/chat/cohere.js";
import { loadConfig } from "../../src/boot/config.js";
import { createDb, type Db } from "../../src/db/client.js";
import { toGlobalId } from "../../src/lib/ids.js";
import { createLogger } from "../../src/lib/logger.js";
import { startFakeCohere, textReply } from "../../tests/helpers/fake-cohere.js";
import { figure, percentile, type Figure } from "../lib/figure.js";
import type { BenchContext } from "../lib/scenario.js";

const REPLIES = Number(process.env.BENCH_REPLIES ?? 4);
const TOKENS = Number(process.env.BENCH_TOKENS ?? 500);
const TOKEN_MS = Number(process.env.BENCH_TOKEN_MS ?? 10);
const FLUSH_MS = Number(process.env.STREAM_FLUSH_MS ?? 100);

const WORDS = ["milk", "eggs", "call", "mom", "report", "plants", "Sunday", "draft", "review", "🙂", "naïve", "list"];
function tokens(count: number, seed: number): string[] {
  return Array.from({ length: count }, (_, i) => `${i === 0 ? "" : " "}${WORDS[(i * 7 + seed) % WORDS.length]}`);
}

export async function runStream(ctx: BenchContext): Promise<Figure[]> {
  const url = ctx.url;

  const secret = randomUUID() + randomUUID();
  const logger = createLogger("silent");
  const verifier = createVerifier({ jwtSecret: secret, jwksUrl: undefined, issuer: undefined, audience: undefined, maxTokenAgeSeconds: undefined });
  const fake = await startFakeCohere();

  /** Write statements of instance A (the one running the turns), by kind. */
  const writes = { streaming: 0, other: 0 };
  let counting = false;
  function countWrite(sql: string): void {
    if (!counting) return;
    const statement = sql.trim().replace(/^(\/\*.*?\*\/\s*)+/, "");
    if (/^UPDATE messages SET content =/i.test(statement)) writes.streaming += 1;
    else if (/^(INSERT|UPDATE|DELETE|WITH)\b/i.test(statement)) writes.other += 1;
  }

  async function instance(db: Db): Promise<App> {
    const app = buildApp({
      db,
      logger,
      verifier,
      graphiql: false,
      http: loadConfig({ NODE_ENV: "production", AUTH_JWT_SECRET: secret }).http,
      listenUrl: url,
      assistant: {
        model: createCohereModel({ apiKey: "bench", baseUrl: fake.baseUrl }),
        modelName: "bench",
        maxSteps: 4,
        callTimeoutMs: 30_000,
        turnTimeoutMs: 120_000,
        clock: () => new Date(),
        logger,
        streamFlushMs: FLUSH_MS,
      },
    });
    await app.start(0, "127.0.0.1");
    return app;
  }

  const dbA = createDb({ url, driver: "pg", poolSize: 5, connectionTimeoutMs: 5000, onQuery: countWrite });
  const dbB = createDb({ url, driver: "pg", poolSize: 5, connectionTimeoutMs: 5000 });
  const a = await instance(dbA);
  const b = await instance(dbB);
  const portOf = (app: App) => (app.server.address() as AddressInfo).port;
  const userId = `bench-${randomUUID()}`;
  const token = await signHs256(secret, { sub: userId, expiresIn: "1h" });

  // Subject ----------------------------------------------------------------------
  const conversation = await dbA.conversation.create({ data: { userId, title: "bench" } });
  const ws = createClient({
    url: `ws://127.0.0.1:${portOf(b)}/graphql`,
    webSocketImpl: WebSocket,
    connectionParams: { authorization: `Bearer ${token}` },
  });
  const received: { at: number; end: number; status: string }[] = [];
  let onSettled: (() => void) | undefined;
  const before = b.streams.establishedCount;
  const unsubscribe = ws.subscribe<{ messageStream: { offset: number; delta: string; message: { status: string } } }>(
    {
      query: "subscription S($c: ID!) { messageStream(conversationId: $c) { offset delta message { status } } }",
      variables: { c: toGlobalId("Conversation", conversation.id) },
    },
    {
      next: ({ data }) => {
        const event = data!.messageStream;
        received.push({ at: performance.now(), end: event.offset + [...event.delta].length, status: event.message.status });
        if (event.message.status !== "STREAMING") onSettled?.();
      },
      error: (error) => ctx.log(`  messageStream error: ${JSON.stringify(error)}`),
      complete: () => {},
    },
  );
  while (b.streams.establishedCount <= before) await new Promise((resolve) => setTimeout(resolve, 10));

  const subjectLatencies: number[] = [];
  const perReply: { durationMs: number; streamingWrites: number; otherWrites: number; flushIntervals: number }[] = [];
  // Reply 0 warms up (JIT, Prisma's query plans, connections) and is not counted.
  for (let reply = 0; reply <= REPLIES; reply += 1) {
    const chunks = tokens(TOKENS, reply);
    fake.enqueue(textReply(chunks.join(""), { chunks, eventDelayMs: TOKEN_MS }));
    received.length = 0;
    writes.streaming = 0;
    writes.other = 0;
    const settled = new Promise<void>((resolve) => (onSettled = resolve));
    counting = true;
    const response = await fetch(`http://127.0.0.1:${portOf(a)}/graphql`, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${token}` },
      body: JSON.stringify({
        query: "mutation S($input: SendMessageInput!) { sendMessage(input: $input) { reply { content } } }",
        variables: { input: { conversationId: toGlobalId("Conversation", conversation.id), content: `reply ${reply}` } },
      }),
    });
    const json = (await response.json()) as { errors?: unknown };
    if (json.errors) throw new Error(`sendMessage failed: ${JSON.stringify(json.errors)}`);
    await settled;
    counting = false;

    if (reply === 0) continue;
    const sent = fake.requests.at(-1)!.sent.filter((event) => event.type === "content-delta");
    let end = 0;
    for (const delta of sent) {
      end += [...(delta.text ?? "")].length;
      const arrival = received.find((event) => event.end >= end);
      if (!arrival) throw new Error(`delta ending at ${end} never arrived`);
      subjectLatencies.push(arrival.at - delta.at);
    }
    const durationMs = sent.at(-1)!.at - sent[0]!.at;
    // A text reply stores two messages: the user's (other) and the answer, whose INSERT is its first streaming write.
    perReply.push({ durationMs, streamingWrites: writes.streaming + 1, otherWrites: writes.other - 1, flushIntervals: durationMs / FLUSH_MS });
  }
  unsubscribe();
  await ws.dispose();

  // Baseline ---------------------------------------------------------------------
  const raw = new pg.Client({ connectionString: url });
  const rawListener = new pg.Client({ connectionString: url });
  await raw.connect();
  await rawListener.connect();
  const rawServer = createServer();
  const rawWss = new WebSocketServer({ server: rawServer });
  await new Promise<void>((resolve) => rawServer.listen(0, "127.0.0.1", resolve));
  const channel = `bench_stream_${randomUUID().replaceAll("-", "")}`;
  await rawListener.query(`LISTEN ${channel}`);
  rawListener.on("notification", (message) => {
    for (const client of rawWss.clients) client.send(message.payload ?? "");
  });
  const rawSocket = new WebSocket(`ws://127.0.0.1:${(rawServer.address() as AddressInfo).port}/`);
  await new Promise((resolve) => rawSocket.once("open", resolve));
  const baselineLatencies: number[] = [];
  const inFlight = new Map<string, number>();
  rawSocket.on("message", (data) => {
    const id = data.toString().slice(0, 8);
    const at = inFlight.get(id);
    // Reply 0 warms up here too.
    if (at !== undefined && !id.startsWith("000")) baselineLatencies.push(performance.now() - at);
  });
  for (let reply = 0; reply <= REPLIES; reply += 1) {
    for (const [index, chunk] of tokens(TOKENS, reply).entries()) {
      const id = `${reply}`.padStart(3, "0") + `${index}`.padStart(5, "0");
      inFlight.set(id, performance.now());
      await raw.query("SELECT pg_notify($1, $2)", [channel, id + chunk]);
      await new Promise((resolve) => setTimeout(resolve, TOKEN_MS));
    }
  }
  await new Promise((resolve) => setTimeout(resolve, 200));

  // Report -----------------------------------------------------------------------
  const subject = { p50: percentile(subjectLatencies, 50), p99: percentile(subjectLatencies, 99) };
  const baseline = { p50: percentile(baselineLatencies, 50), p99: percentile(baselineLatencies, 99) };
  const latencyGoal = 2 * baseline.p99 + FLUSH_MS;
  const writesMet = perReply.every((r) => r.streamingWrites <= Math.ceil(r.flushIntervals) + 1);
  rawSocket.close();
  rawWss.close();
  await new Promise((resolve) => rawServer.close(resolve));
  await raw.end();
  await rawListener.end();
  await a.stop();
  await b.stop();
  await fake.close();
  await dbA.$disconnect();
  await dbB.$disconnect();

  const maxWrites = Math.max(...perReply.map((r) => r.streamingWrites));
  const maxIntervals = Math.max(...perReply.map((r) => Math.ceil(r.flushIntervals) + 1));
  ctx.log(
    `  p99 ${subject.p99.toFixed(1)} ms vs raw ${baseline.p99.toFixed(1)} ms (goal ≤ ${latencyGoal.toFixed(1)}); streaming writes per reply ≤ ${maxWrites}`,
  );
  const note = `${REPLIES} replies of ${TOKENS} tokens, one every ${TOKEN_MS} ms; STREAM_FLUSH_MS=${FLUSH_MS}; subscriber on another instance; baseline: NOTIFY per delta → LISTEN → bare ws`;
  return [
    figure({ id: "B7", figure: "streamed delta, model → subscriber: p50", ours: subject.p50, baseline: baseline.p50, unit: "ms", goal: "—", note }),
    figure({
      id: "B7",
      figure: "streamed delta, model → subscriber: p99",
      ours: subject.p99,
      baseline: baseline.p99,
      unit: "ms",
      goal: `≤ 2 × baseline + ${FLUSH_MS} ms (${latencyGoal.toFixed(0)} ms)`,
      met: subject.p99 <= latencyGoal,
    }),
    figure({
      id: "B7",
      figure: "streaming writes per reply (most of any reply)",
      ours: maxWrites,
      baseline: null,
      unit: "writes",
      goal: "≤ 1 per flush interval + 1",
      met: writesMet,
      note: `${maxIntervals} allowed for the longest reply`,
    }),
  ];
}
