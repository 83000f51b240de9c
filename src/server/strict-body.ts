import { GraphQLError } from "graphql";
import type { GraphQLParams, Plugin } from "graphql-yoga";
import { ErrorCode } from "../lib/errors.js";
import { BodyError, readJsonBody } from "../lib/http-body.js";

/**
 * Request parsing that never alters what the client sent. Yoga decodes
 * bodies and query strings leniently, so invalid UTF-8 silently became
 * U+FFFD in stored titles; here it is a 400. Only GET (queries, SSE) and
 * POST application/json are accepted: other content types are 415.
 */
export function useStrictRequestParsing(maxBodyBytes: number): Plugin {
  return {
    onRequestParse({ request, setRequestParser }) {
      if (request.method === "GET") setRequestParser(parseGet);
      else if (request.method === "POST" && isJson(request)) setRequestParser((req) => parseJsonBody(req, maxBodyBytes));
      else if (request.method === "POST") setRequestParser(unsupportedMediaType);
    },
  };
}

function isJson(request: Request): boolean {
  const type = request.headers.get("content-type")?.split(";")[0]?.trim().toLowerCase();
  return type === "application/json" || type === "application/graphql+json";
}

function invalid(message: string, status = 400, extensions: Record<string, unknown> = {}): GraphQLError {
  return new GraphQLError(message, { extensions: { ...extensions, code: ErrorCode.BAD_USER_INPUT, http: { status } } });
}

async function parseJsonBody(request: Request, maxBodyBytes: number): Promise<GraphQLParams> {
  let body: unknown;
  try {
    body = await readJsonBody(request, maxBodyBytes);
  } catch (error) {
    if (!(error instanceof BodyError)) throw error;
    throw invalid(error.message, error.status, error.status === 413 ? { limit: "MAX_BODY_BYTES" } : {});
  }
  if (body === null || typeof body !== "object" || Array.isArray(body)) {
    throw invalid("The request body must be a JSON object with a `query`");
  }
  return body as GraphQLParams;
}

function parseGet(request: Request): GraphQLParams {
  const params = new Map<string, string>();
  const search = new URL(request.url).search.slice(1);
  for (const pair of search.split("&")) {
    if (pair === "") continue;
    const at = pair.indexOf("=");
    params.set(decodeStrict(at < 0 ? pair : pair.slice(0, at)), decodeStrict(at < 0 ? "" : pair.slice(at + 1)));
  }
  return {
    query: params.get("query"),
    operationName: params.get("operationName"),
    variables: jsonParam(params, "variables"),
    extensions: jsonParam(params, "extensions"),
  };
}

/** decodeURIComponent refuses percent-escapes that are not UTF-8, where URLSearchParams would substitute U+FFFD. */
function decodeStrict(component: string): string {
  try {
    return decodeURIComponent(component.replaceAll("+", " "));
  } catch {
    throw invalid("The query string is not valid percent-encoded UTF-8");
  }
}

function jsonParam(params: Map<string, string>, name: string): Record<string, unknown> | undefined {
  const raw = params.get(name);
  if (raw === undefined || raw === "") return undefined;
  try {
    const value: unknown = JSON.parse(raw);
    if (value === null) return undefined;
    if (typeof value !== "object" || Array.isArray(value)) throw new Error("not an object");
    return value as Record<string, unknown>;
  } catch {
    throw invalid(`The "${name}" query parameter must be a JSON object`);
  }
}

function unsupportedMediaType(): never {
  throw invalid("Send operations as POST with Content-Type: application/json (or as GET)", 415);
}
