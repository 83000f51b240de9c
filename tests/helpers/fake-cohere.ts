import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo, Socket } from "node:net";

/**
 * A fake Cohere: a real HTTP server on loopback speaking the v2 wire format
 * (POST /v2/chat, snake_case JSON), driven through the real cohere-ai SDK.
 * Tests script its answers in order and read back every request it got.
 *
 * A request with `"stream": true` (the SDK's chatStream, which the assistant
 * always uses) gets the scripted answer as server-sent events in Cohere's
 * order (message-start, tool-plan-delta*, tool-call-start, tool-call-delta*, tool-call-end per call,
 * content-start, content-delta*, content-end, message-end), with a scripted
 * delay between events; it can pause at a gate, or break off mid-answer.
 */

export interface WireToolCall {
  id: string;
  type: "function";
  function: { name: string; arguments: string };
}

export interface WireMessage {
  role: "system" | "user" | "assistant" | "tool";
  content?: unknown;
  tool_plan?: string;
  tool_calls?: WireToolCall[];
  tool_call_id?: string;
}

/** One server-sent event the fake wrote, and when (performance.now()). */
export interface SentEvent {
  type: string;
  /** content-delta's text. */
  text?: string;
  at: number;
}

export interface RecordedRequest {
  headers: IncomingMessage["headers"];
  body: { model: string; messages: WireMessage[]; tools?: { type: string; function: { name: string; parameters: unknown } }[]; stream?: boolean };
  /** The events streamed so far. */
  sent: SentEvent[];
  /** The client went away before the answer's end (an aborted stream). */
  aborted: boolean;
  /** The answer was written to its end. */
  finished: boolean;
}

export interface ScriptedReply {
  status?: number;
  headers?: Record<string, string>;
  /** The non-streamed response body; a stream is made from it. */
  body: unknown;
  /** Milliseconds to wait before answering (a slow model). */
  delayMs?: number;
  /** Milliseconds between two streamed events. */
  eventDelayMs?: number;
  /** The answer text's content-delta pieces (default: word by word). Must join to the text. */
  chunks?: string[];
  /** Pause after this many content deltas until `until` settles. */
  gate?: { afterDeltas: number; until: Promise<unknown> };
  /** Drop the connection after this many content deltas (a stream that breaks off). */
  breakAfterDeltas?: number;
  /**
   * After this many whole events, write half of the next one and end the
   * response cleanly: a stream truncated mid-event, with no message-end.
   */
  truncateAfterEvents?: number;
  /** Sent verbatim instead of `body` (or its stream), with `status` and `headers`: a garbage body. */
  rawBody?: string;
}

/** A function script may be async: the request waits for it (e.g. for an id the test learns only once the turn started). */
export type Script = ScriptedReply | ((request: RecordedRequest) => ScriptedReply | Promise<ScriptedReply>);

export interface FakeCohere {
  /** Pass as COHERE_BASE_URL / the SDK's `environment`. */
  baseUrl: string;
  requests: RecordedRequest[];
  /** Queues answers; each request takes the next one. */
  enqueue(...scripts: Script[]): void;
  /** Answer every further request with this once the queue is empty. */
  setFallback(script: Script | undefined): void;
  pending(): number;
  close(): Promise<void>;
}

let nextId = 0;
function responseId(): string {
  nextId += 1;
  return `fake-${nextId}`;
}

export const FAKE_USAGE = { billed_units: { input_tokens: 10, output_tokens: 5 }, tokens: { input_tokens: 100, output_tokens: 20 } };

/** A final answer (finish_reason COMPLETE). */
export function textReply(text: string, options: Omit<ScriptedReply, "body"> & { usage?: unknown } = {}): ScriptedReply {
  const { usage, ...rest } = options;
  return {
    ...rest,
    body: {
      id: responseId(),
      finish_reason: "COMPLETE",
      message: { role: "assistant", content: [{ type: "text", text }] },
      usage: usage ?? FAKE_USAGE,
    },
  };
}

/** A step that calls tools (finish_reason TOOL_CALL). `args` objects are JSON-encoded as Cohere does; strings are sent verbatim. */
export function toolCallReply(
  calls: { id?: string; name: string; args: Record<string, unknown> | string }[],
  toolPlan = "I will use the tools.",
): ScriptedReply {
  return {
    body: {
      id: responseId(),
      finish_reason: "TOOL_CALL",
      message: {
        role: "assistant",
        tool_plan: toolPlan,
        tool_calls: calls.map((call, index) => ({
          id: call.id ?? `${call.name}_${responseId()}_${index}`,
          type: "function",
          function: { name: call.name, arguments: typeof call.args === "string" ? call.args : JSON.stringify(call.args) },
        })),
      },
      usage: FAKE_USAGE,
    },
  };
}

export function errorReply(status: number, message = "fake error", headers: Record<string, string> = {}): ScriptedReply {
  return { status, headers, body: { id: responseId(), message } };
}

/** Word by word, spaces kept: how a model's tokens roughly fall. */
export function wordChunks(text: string): string[] {
  return text.match(/\s*\S+\s*/gu) ?? (text === "" ? [] : [text]);
}

interface Body {
  id?: string;
  finish_reason?: string;
  message?: {
    tool_plan?: string;
    tool_calls?: { id?: string; type?: string; function?: { name?: string; arguments?: string } }[];
    content?: { type: string; text?: string; thinking?: string }[];
  };
  usage?: unknown;
}

/** The scripted answer as Cohere's stream events, in wire order. */
function streamEvents(reply: ScriptedReply): Record<string, unknown>[] {
  const body = reply.body as Body;
  const message = body.message ?? {};
  const events: Record<string, unknown>[] = [{ type: "message-start", id: body.id, delta: { message: { role: "assistant" } } }];
  for (const piece of wordChunks(message.tool_plan ?? "")) {
    events.push({ type: "tool-plan-delta", delta: { message: { tool_plan: piece } } });
  }
  (message.tool_calls ?? []).forEach((call, index) => {
    const start = {
      ...(call.id === undefined ? {} : { id: call.id }),
      type: "function",
      function: { name: call.function?.name ?? "", arguments: "" },
    };
    events.push({ type: "tool-call-start", index, delta: { message: { tool_calls: start } } });
    const args = call.function?.arguments ?? "";
    const third = Math.ceil(args.length / 3) || 1;
    for (let at = 0; at < args.length; at += third) {
      events.push({ type: "tool-call-delta", index, delta: { message: { tool_calls: { function: { arguments: args.slice(at, at + third) } } } } });
    }
    events.push({ type: "tool-call-end", index });
  });
  (message.content ?? []).forEach((item, index) => {
    if (item.type === "thinking") {
      events.push({ type: "content-start", index, delta: { message: { content: { type: "thinking", thinking: "" } } } });
      events.push({ type: "content-delta", index, delta: { message: { content: { thinking: item.thinking ?? "" } } } });
    } else {
      events.push({ type: "content-start", index, delta: { message: { content: { type: "text", text: "" } } } });
      for (const text of reply.chunks ?? wordChunks(item.text ?? "")) {
        events.push({ type: "content-delta", index, delta: { message: { content: { text } } } });
      }
    }
    events.push({ type: "content-end", index });
  });
  events.push({ type: "message-end", id: body.id, delta: { finish_reason: body.finish_reason ?? "COMPLETE", usage: body.usage ?? FAKE_USAGE } });
  return events;
}

export async function startFakeCohere(): Promise<FakeCohere> {
  const requests: RecordedRequest[] = [];
  const queue: Script[] = [];
  let fallback: Script | undefined;
  const sockets = new Set<Socket>();
  const timers = new Set<NodeJS.Timeout>();
  let closing = false;

  const server: Server = createServer((req, res) => void handle(req, res));
  server.on("connection", (socket) => {
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
  });

  function wait(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        timers.delete(timer);
        resolve();
      }, ms);
      timers.add(timer);
    });
  }

  async function stream(res: ServerResponse, reply: ScriptedReply, recorded: RecordedRequest): Promise<void> {
    res.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-cache", ...reply.headers });
    let deltas = 0;
    for (const [index, event] of streamEvents(reply).entries()) {
      if (res.destroyed || closing) return;
      const type = event.type as string;
      if (index === reply.truncateAfterEvents) {
        const data = JSON.stringify(event);
        res.end(`event: ${type}\ndata: ${data.slice(0, Math.ceil(data.length / 2))}`);
        // Ended on purpose: not a client that went away.
        recorded.finished = true;
        return;
      }
      if (type === "content-delta" && reply.gate && deltas === reply.gate.afterDeltas) await reply.gate.until;
      if (type === "content-delta" && reply.breakAfterDeltas !== undefined && deltas === reply.breakAfterDeltas) {
        res.destroy();
        return;
      }
      if (reply.eventDelayMs) await wait(reply.eventDelayMs);
      if (res.destroyed || closing) return;
      const text = (event as { delta?: { message?: { content?: { text?: string } } } }).delta?.message?.content?.text;
      res.write(`event: ${type}\ndata: ${JSON.stringify(event)}\n\n`);
      recorded.sent.push({ type, ...(type === "content-delta" && text !== undefined ? { text } : {}), at: performance.now() });
      if (type === "content-delta") deltas += 1;
    }
    res.end();
    recorded.finished = true;
  }

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    if (req.method !== "POST" || req.url !== "/v2/chat") {
      res.writeHead(404, { "content-type": "application/json" }).end(JSON.stringify({ message: `no route ${req.method} ${req.url}` }));
      return;
    }
    const recorded: RecordedRequest = {
      headers: req.headers,
      body: JSON.parse(Buffer.concat(chunks).toString("utf8")),
      sent: [],
      aborted: false,
      finished: false,
    };
    requests.push(recorded);
    res.on("close", () => {
      if (!recorded.finished) recorded.aborted = true;
    });
    const script = queue.shift() ?? fallback;
    if (!script) {
      res.writeHead(500, { "content-type": "application/json" }).end(JSON.stringify({ message: "fake cohere: nothing scripted" }));
      return;
    }
    const reply = typeof script === "function" ? await script(recorded) : script;
    if (reply.delayMs) await wait(reply.delayMs);
    if (res.destroyed || closing) return;
    const status = reply.status ?? 200;
    if (reply.rawBody !== undefined) {
      res.writeHead(status, { "content-type": "text/plain", ...reply.headers }).end(reply.rawBody);
      recorded.finished = true;
      return;
    }
    if (status === 200 && recorded.body.stream === true) {
      await stream(res, reply, recorded);
      return;
    }
    res.writeHead(status, { "content-type": "application/json", ...reply.headers }).end(JSON.stringify(reply.body));
    recorded.finished = true;
  }

  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    baseUrl: `http://127.0.0.1:${port}`,
    requests,
    enqueue: (...scripts) => void queue.push(...scripts),
    setFallback: (script) => {
      fallback = script;
    },
    pending: () => queue.length,
    close: () =>
      new Promise<void>((resolve) => {
        closing = true;
        for (const timer of timers) clearTimeout(timer);
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
}
