import { readFile } from "node:fs/promises";
import { createRequire } from "node:module";
import path from "node:path";
import { renderGraphiQL, type GraphiQLOptions } from "graphql-yoga";

/**
 * GraphiQL from this server instead of a CDN: Yoga's page loads its bundle
 * from unpkg, which fails on networks that cannot reach it (and is a third
 * party in the page). The same bundle ships in @graphql-yoga/graphiql.
 */
export const GRAPHIQL_ASSETS_PATH = "/graphiql/assets/";

/** GraphiQL's bundle, looked up by the first asset request (never, in production). */
let distDir: string | undefined;
function graphiqlDist(): string {
  distDir ??= path.join(path.dirname(createRequire(import.meta.url).resolve("@graphql-yoga/graphiql/package.json")), "dist");
  return distDir;
}

/** Only these files are served: nothing else under node_modules is reachable. */
const ASSETS: Record<string, string> = {
  "yoga-graphiql.umd.js": "text/javascript; charset=utf-8",
  "graphiql.css": "text/css; charset=utf-8",
  "monacoeditorwork/editor.worker.bundle.js": "text/javascript; charset=utf-8",
  "monacoeditorwork/json.worker.bundle.js": "text/javascript; charset=utf-8",
  "monacoeditorwork/graphql.worker..bundle.js": "text/javascript; charset=utf-8",
};

const CDN_DIST = /https:\/\/unpkg\.com\/@graphql-yoga\/graphiql@[^/]+\/dist\//g;
const CDN_FAVICON = /<link rel=icon href=[^>]*>/;

const HELP = `# Every operation needs a JWT: open "Headers" below and send
#   { "Authorization": "Bearer <JWT>" }
# \`npm start\` without auth settings prints a dev token to paste there.

query MyTasks {
  tasks(first: 10) {
    edges { node { id title completed } }
  }
}
`;

/** GraphiQL's settings: a first query explaining the Authorization header, and the header itself in dev mode. */
export function graphiqlOptions(defaultHeaders?: Record<string, string>): GraphiQLOptions & { initialQuery: string } {
  return {
    title: "Todo assistant API",
    defaultQuery: HELP,
    // The bundled GraphiQL opens on initialQuery (defaultQuery is only used by older bundles).
    initialQuery: HELP,
    headers: defaultHeaders ? JSON.stringify(defaultHeaders, null, 2) : undefined,
    subscriptionsProtocol: "WS",
  };
}

export function renderLocalGraphiQL(options: GraphiQLOptions): string {
  return renderGraphiQL(options).replace(CDN_DIST, GRAPHIQL_ASSETS_PATH).replace(CDN_FAVICON, "");
}

const cache = new Map<string, Promise<Buffer>>();

/**
 * A GraphiQL asset as a Response; undefined for other paths. Names are
 * compared as sent, never percent-decoded: only the listed files exist, so
 * nothing else under node_modules is reachable and a bad escape cannot throw.
 */
export async function graphiqlAsset(request: Request, pathname: string): Promise<Response | undefined> {
  if (!pathname.startsWith(GRAPHIQL_ASSETS_PATH)) return undefined;
  const name = pathname.slice(GRAPHIQL_ASSETS_PATH.length);
  const type = Object.hasOwn(ASSETS, name) ? ASSETS[name] : undefined;
  if (type === undefined || (request.method !== "GET" && request.method !== "HEAD")) {
    return new Response("Not found", { status: 404, headers: { "content-type": "text/plain; charset=utf-8" } });
  }
  let file = cache.get(name);
  if (!file) {
    file = readFile(path.join(graphiqlDist(), name));
    cache.set(name, file);
    file.catch(() => cache.delete(name));
  }
  const body = await file;
  const headers = { "content-type": type, "cache-control": "public, max-age=86400", "content-length": String(body.length) };
  return new Response(request.method === "HEAD" ? null : new Uint8Array(body), { status: 200, headers });
}
