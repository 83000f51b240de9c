import { getOperationAST, GraphQLError, type DocumentNode, type ExecutionArgs } from "graphql";
import { CloseCode, type ServerOptions, type SubscribePayload } from "graphql-ws";
import type { YogaServerInstance } from "graphql-yoga";
import { bearerToken, type TokenVerifier } from "../../auth/verifier.js";
import { AppError, ErrorCode, toGraphQLError } from "../../lib/errors.js";
import { armDeadline } from "../../realtime/deadline-timer.js";
import type { Context } from "../../schema/context.js";
import type { ConnectionLedger } from "./connection-ledger.js";
import { resolveOperationText, type PersistedOperationsOptions } from "../persisted-operations.js";
import { WsCloseCode } from "./close-codes.js";
import { formatError, withoutHttpExtensions, type MaskError } from "./error-format.js";
import type { SocketExtra, SocketState } from "./socket-state.js";

/** What Yoga's envelop needs to run one operation it did not parse itself. */
interface EnvelopedRoot {
  execute: (args: ExecutionArgs) => unknown;
  subscribe: (args: ExecutionArgs) => unknown;
}

export interface OperationOptions {
  yoga: YogaServerInstance<Record<string, unknown>, Context>;
  verifier: TokenVerifier;
  ledger: ConnectionLedger;
  maskError: MaskError;
  /** WS_CONNECTIONS_PER_USER, for the close reason. */
  connectionsPerUser: number;
  /** WS_OPERATIONS_PER_SOCKET. */
  operationsPerSocket: number;
  /** Trusted documents and ALLOW_ARBITRARY_OPERATIONS, as over HTTP. */
  trusted: PersistedOperationsOptions;
}

type Ctx = Parameters<NonNullable<ServerOptions<Record<string, unknown> | undefined, SocketExtra>["onConnect"]>>[0];

/**
 * graphql-ws' server options: operations run through Yoga's envelop, so
 * masking and the other plugins apply exactly as over HTTP, and what
 * graphql-ws answers itself is masked the same way.
 */
export function graphqlWsOptions(options: OperationOptions): ServerOptions<Record<string, unknown> | undefined, SocketExtra> {
  return {
    onConnect: (ctx) => authenticate(ctx, options),
    onSubscribe: (ctx, _id, payload) => prepare(ctx, payload, options),
    onNext: (_ctx, _id, _payload, _args, result) => withoutHttpExtensions(result),
    onError: (_ctx, _id, _payload, errors) => errors.map((error) => formatError(options.maskError, error)),
    execute: (args) => (args.rootValue as EnvelopedRoot).execute(args) as never,
    subscribe: (args) => (args.rootValue as EnvelopedRoot).subscribe(args) as never,
  };
}

/**
 * The token comes from connection_init's `authorization` (or the upgrade
 * request's header); a bad one closes the socket with 4403, and the socket
 * closes when the token expires. A user with WS_CONNECTIONS_PER_USER sockets
 * open here gets 1008 instead of an acknowledgement.
 */
async function authenticate(ctx: Ctx, options: OperationOptions): Promise<boolean> {
  const { socket, request, state } = ctx.extra;
  const fromParams = ctx.connectionParams?.authorization ?? ctx.connectionParams?.Authorization;
  const header = typeof fromParams === "string" ? fromParams : request.headers.authorization;
  let viewer;
  try {
    viewer = await options.verifier.verify(bearerToken(header));
  } catch {
    return false; // graphql-ws closes with 4403 Forbidden
  }
  // Closed while the token was being verified: its seat is gone, and "close" has fired already.
  if (state.seat.released) return false;
  if (!options.ledger.authenticate(state.seat, viewer.userId)) {
    socket.close(WsCloseCode.TooManyConnections, `Too many connections: at most ${options.connectionsPerUser} per user (WS_CONNECTIONS_PER_USER)`);
    return false;
  }
  state.viewer = viewer;
  // Re-armed in steps: a plain setTimeout fires at once beyond ~24.8 days.
  const expiry = armDeadline(viewer.expiresAt * 1000, () => socket.close(CloseCode.Forbidden, "Token expired"));
  socket.once("close", () => expiry.cancel());
  return true;
}

async function prepare(ctx: Ctx, payload: SubscribePayload, options: OperationOptions) {
  const { state } = ctx.extra;
  const { schema, execute, subscribe, contextFactory, parse, validate } = options.yoga.getEnveloped({
    ...ctx,
    req: ctx.extra.request,
    socket: ctx.extra.socket,
    params: payload,
    viewer: state.viewer,
  });
  let document: DocumentNode;
  try {
    // A trusted document's hash stands for its text; refused as over HTTP when unknown, or when only trusted documents run.
    document = parse(resolveOperationText(payload, options.trusted) ?? payload.query);
  } catch (error) {
    return [error instanceof GraphQLError ? error : new GraphQLError("Unexpected error", { originalError: error as Error })];
  }
  const errors = validate(schema, document);
  if (errors.length > 0) return errors;
  const operation = getOperationAST(document, payload.operationName);
  // Yoga's words over HTTP, for an unknown operationName or several operations without one.
  if (!operation) return [new GraphQLError("Could not determine what operation to execute.")];
  // Subscriptions are counted per user by the hub (SUBSCRIPTIONS_PER_USER); queries and mutations here.
  const release = operation.operation === "subscription" ? () => {} : admit(state, options.operationsPerSocket);
  if (!release) return [tooManyOperations(options.operationsPerSocket)];
  try {
    const rootValue: EnvelopedRoot = { execute: (args) => runThenRelease(execute, args, release), subscribe };
    const contextValue = await contextFactory();
    return { schema, document, operationName: payload.operationName, variableValues: payload.variables, contextValue, rootValue };
  } catch (error) {
    release();
    throw error;
  }
}

/** Takes one of the socket's operation slots; undefined when all are taken. The release is idempotent. */
function admit(state: SocketState, limit: number): (() => void) | undefined {
  if (state.running >= limit) return undefined;
  state.running += 1;
  let released = false;
  return () => {
    if (released) return;
    released = true;
    state.running -= 1;
  };
}

async function runThenRelease(execute: EnvelopedRoot["execute"], args: ExecutionArgs, release: () => void): Promise<unknown> {
  try {
    return await execute(args);
  } finally {
    release();
  }
}

function tooManyOperations(limit: number): GraphQLError {
  return toGraphQLError(
    new AppError(
      ErrorCode.RATE_LIMITED,
      `Too many operations in flight on this connection: at most ${limit} queries and mutations at once (WS_OPERATIONS_PER_SOCKET); wait for one to finish`,
      { extensions: { limit } },
    ),
  );
}
