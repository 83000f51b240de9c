import type { IncomingMessage, Server } from "node:http";
import type { Duplex } from "node:stream";
import { setTimeout as sleep } from "node:timers/promises";
import type { ExecutionArgs, ExecutionResult } from "graphql";
import { CloseCode, type FormattedExecutionResult } from "graphql-ws";
import { useServer } from "graphql-ws/use/ws";
import type { YogaServerInstance } from "graphql-yoga";
import { WebSocketServer } from "ws";
import { bearerToken, type TokenVerifier, type Viewer } from "../auth/verifier.js";
import type { Logger } from "../lib/logger.js";
import { armDeadline } from "../realtime/deadline-timer.js";
import type { Context } from "../schema/context.js";

const CLOSE_HANDSHAKE_MS = 2000;

type ConnectionExtra = {
  viewer?: Viewer;
};

/** What Yoga's envelop needs to run one operation it did not parse itself. */
interface EnvelopedRoot {
  execute: (args: ExecutionArgs) => unknown;
  subscribe: (args: ExecutionArgs) => unknown;
}

/**
 * graphql-ws (subprotocol graphql-transport-ws) on /graphql of the same HTTP
 * server, running operations through Yoga's envelop so masking and the other
 * plugins apply exactly as over HTTP. The token comes from connection_init's
 * `authorization` (or the upgrade request's header); a bad one closes the
 * socket with 4403, and the socket closes when the token expires.
 */
export function attachGraphQLWs(options: {
  server: Server;
  yoga: YogaServerInstance<Record<string, unknown>, Context>;
  verifier: TokenVerifier;
  logger: Logger;
  /** The largest message a client may send (MAX_BODY_BYTES). */
  maxPayload: number;
  /** Browser origins besides the API's own (CORS_ORIGINS). */
  allowedOrigins: readonly string[];
  /** False while the server drains: new sockets are refused. */
  accepting: () => boolean;
}): { close(): Promise<void> } {
  // noServer: upgrades are checked here first, and the HTTP server's own errors
  // (EADDRINUSE) stay with it instead of being re-emitted on the WebSocket server.
  const wss = new WebSocketServer({ noServer: true, maxPayload: options.maxPayload });
  wss.on("error", (error) => options.logger.error({ err: error }, "WebSocket server error"));
  options.server.on("upgrade", (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    socket.on("error", () => socket.destroy());
    if (pathOf(req.url) !== options.yoga.graphqlEndpoint) return refuse(socket, 404, "Not Found");
    if (!options.accepting()) return refuse(socket, 503, "Service Unavailable");
    // Browsers let any page open a WebSocket anywhere; only the API's own pages and listed origins may.
    if (!originAllowed(req, options.allowedOrigins)) return refuse(socket, 403, "Forbidden");
    wss.handleUpgrade(req, socket, head, (client) => wss.emit("connection", client, req));
  });
  const disposable = useServer<Record<string, unknown> | undefined, ConnectionExtra>(
    {
      onConnect: async (ctx) => {
        const fromParams = ctx.connectionParams?.authorization ?? ctx.connectionParams?.Authorization;
        const header = typeof fromParams === "string" ? fromParams : ctx.extra.request.headers.authorization;
        try {
          const viewer = await options.verifier.verify(bearerToken(header));
          const extra = ctx.extra as ConnectionExtra & typeof ctx.extra;
          extra.viewer = viewer;
          // Re-armed in steps: a plain setTimeout fires at once beyond ~24.8 days.
          const { socket } = ctx.extra;
          const expiry = armDeadline(viewer.expiresAt * 1000, () => socket.close(CloseCode.Forbidden, "Token expired"));
          // Closed while the token was being verified: "close" has fired already.
          if (socket.readyState === socket.CLOSED) expiry.cancel();
          else socket.once("close", () => expiry.cancel());
          return true;
        } catch {
          return false; // graphql-ws closes with 4403 Forbidden
        }
      },
      onSubscribe: async (ctx, _id, payload) => {
        const { schema, execute, subscribe, contextFactory, parse, validate } = options.yoga.getEnveloped({
          ...ctx,
          req: ctx.extra.request,
          socket: ctx.extra.socket,
          params: payload,
          viewer: (ctx.extra as ConnectionExtra).viewer,
        });
        let document;
        try {
          document = parse(payload.query);
        } catch (error) {
          return [error as never];
        }
        const errors = validate(schema, document);
        if (errors.length > 0) return errors;
        const rootValue: EnvelopedRoot = { execute, subscribe };
        return {
          schema,
          document,
          operationName: payload.operationName,
          variableValues: payload.variables,
          contextValue: await contextFactory(),
          rootValue,
        };
      },
      onNext: (_ctx, _id, _payload, _args, result) => withoutHttpExtensions(result),
      execute: (args) => (args.rootValue as EnvelopedRoot).execute(args) as never,
      subscribe: (args) => (args.rootValue as EnvelopedRoot).subscribe(args) as never,
    },
    wss,
  );
  return {
    // A proper close (1001 Going Away) for every socket, so clients reconnect elsewhere at once;
    // one that does not answer the closing handshake in time is cut.
    close: async () => {
      const closed = Promise.resolve(disposable.dispose());
      const late = await Promise.race([closed.then(() => false), sleep(CLOSE_HANDSHAKE_MS).then(() => true)]);
      if (!late) return;
      for (const client of wss.clients) client.terminate();
      await closed;
    },
  };
}

function pathOf(url: string | undefined): string | undefined {
  const path = url?.split("?", 1)[0];
  return path === "" ? undefined : path;
}

function originAllowed(req: IncomingMessage, allowed: readonly string[]): boolean {
  const origin = req.headers.origin;
  // Non-browser clients send no Origin; they carry a token like any other client.
  if (origin === undefined) return true;
  if (allowed.includes(origin)) return true;
  const host = req.headers.host;
  return host !== undefined && (origin === `http://${host}` || origin === `https://${host}`);
}

function refuse(socket: Duplex, status: number, reason: string): void {
  socket.end(`HTTP/1.1 ${status} ${reason}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
}

/**
 * `extensions.http` (a status and headers, e.g. 503 and Retry-After) is meant
 * for an HTTP response, and Yoga strips it from HTTP answers; over a
 * WebSocket it would reach the client as is. The error's code and
 * `retryable` carry the same meaning.
 */
function withoutHttpExtensions(result: ExecutionResult): FormattedExecutionResult | undefined {
  if (!result.errors?.some((error) => error.extensions?.http !== undefined)) return undefined;
  return {
    ...result,
    errors: result.errors.map((error) => {
      const { http: _http, ...extensions } = error.extensions ?? {};
      return { ...error.toJSON(), extensions };
    }),
  };
}
