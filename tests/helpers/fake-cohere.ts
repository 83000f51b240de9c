import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";

/**
 * A fake Cohere: a real HTTP server on loopback speaking the v2 wire format
 * (POST /v2/chat, snake_case JSON), driven through the real cohere-ai SDK.
 * Tests script its answers in order and read back every request it got.
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

export interface RecordedRequest {
  headers: IncomingMessage["headers"];
  body: { model: string; messages: WireMessage[]; tools?: { type: string; function: { name: string; parameters: unknown } }[]; stream?: boolean };
}

export interface ScriptedReply {
  status?: number;
  headers?: Record<string, string>;
  body: unknown;
  /** Milliseconds to wait before answering (a slow model). */
  delayMs?: number;
}

export type Script = ScriptedReply | ((request: RecordedRequest) => ScriptedReply);

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

const USAGE = { billed_units: { input_tokens: 10, output_tokens: 5 }, tokens: { input_tokens: 100, output_tokens: 20 } };

/** A final answer (finish_reason COMPLETE). */
export function textReply(text: string): ScriptedReply {
  return {
    body: {
      id: responseId(),
      finish_reason: "COMPLETE",
      message: { role: "assistant", content: [{ type: "text", text }] },
      usage: USAGE,
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
      usage: USAGE,
    },
  };
}

export function errorReply(status: number, message = "fake error", headers: Record<string, string> = {}): ScriptedReply {
  return { status, headers, body: { id: responseId(), message } };
}

export async function startFakeCohere(): Promise<FakeCohere> {
  const requests: RecordedRequest[] = [];
  const queue: Script[] = [];
  let fallback: Script | undefined;
  const sockets = new Set<import("node:net").Socket>();
  const timers = new Set<NodeJS.Timeout>();

  const server: Server = createServer((req, res) => void handle(req, res));
  server.on("connection", (socket) => {
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
  });

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    if (req.method !== "POST" || req.url !== "/v2/chat") {
      res.writeHead(404, { "content-type": "application/json" }).end(JSON.stringify({ message: `no route ${req.method} ${req.url}` }));
      return;
    }
    const recorded: RecordedRequest = { headers: req.headers, body: JSON.parse(Buffer.concat(chunks).toString("utf8")) };
    requests.push(recorded);
    const script = queue.shift() ?? fallback;
    if (!script) {
      res.writeHead(500, { "content-type": "application/json" }).end(JSON.stringify({ message: "fake cohere: nothing scripted" }));
      return;
    }
    const reply = typeof script === "function" ? script(recorded) : script;
    const send = () => {
      if (res.destroyed) return;
      res
        .writeHead(reply.status ?? 200, { "content-type": "application/json", ...reply.headers })
        .end(JSON.stringify(reply.body));
    };
    if (reply.delayMs) {
      const timer = setTimeout(() => {
        timers.delete(timer);
        send();
      }, reply.delayMs);
      timers.add(timer);
    } else {
      send();
    }
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
        for (const timer of timers) clearTimeout(timer);
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
}
