import { createReadStream } from "node:fs";
import type { IncomingMessage, ServerResponse } from "node:http";
import { createRequire } from "node:module";
import path from "node:path";
import { renderGraphiQL, type GraphiQLOptions } from "graphql-yoga";

/**
 * GraphiQL from this server instead of a CDN: Yoga's page loads its bundle
 * from unpkg, which fails on networks that cannot reach it (and is a third
 * party in the page). The same bundle ships in @graphql-yoga/graphiql.
 */
export const GRAPHIQL_ASSETS_PATH = "/graphiql/assets/";

const require = createRequire(import.meta.url);
const distDir = path.join(path.dirname(require.resolve("@graphql-yoga/graphiql/package.json")), "dist");

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

/** Serves a GraphiQL asset; false when the request is not for one. */
export function serveGraphiQLAsset(req: IncomingMessage, res: ServerResponse): boolean {
  const url = req.url ?? "";
  if (!url.startsWith(GRAPHIQL_ASSETS_PATH) || (req.method !== "GET" && req.method !== "HEAD")) return false;
  const name = decodeURIComponent(url.slice(GRAPHIQL_ASSETS_PATH.length).split("?")[0] ?? "");
  const type = ASSETS[name];
  if (type === undefined) {
    res.writeHead(404, { "content-type": "text/plain" }).end("Not found");
    return true;
  }
  res.writeHead(200, { "content-type": type, "cache-control": "public, max-age=86400" });
  if (req.method === "HEAD") {
    res.end();
    return true;
  }
  createReadStream(path.join(distDir, name))
    .on("error", () => res.destroy())
    .pipe(res);
  return true;
}
