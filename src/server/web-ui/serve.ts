import { readdir, readFile } from "node:fs/promises";
import path from "node:path";
import type { Route } from "../routes.js";

export interface WebUiOptions {
  /** The built client (web/dist). */
  distDir: string;
  /** The dev token, put in the page only for same-origin requests from this machine (as GraphiQL's). */
  devToken?: string | undefined;
  /** Whether a request may receive the dev token (isSameOriginLoopback). */
  trusted: (request: Request, serverContext: Record<string, unknown>) => boolean;
}

/**
 * Where index.html carries the dev token; empty in the built file. Matched
 * however the tag is closed (`>` or ` />`): a formatter rewriting index.html
 * must not silently stop the token from reaching the page.
 */
const DEV_TOKEN_META = /<meta name="todo-dev-token" content=""\s*\/?>/;

/**
 * The page's policy: only this origin's own scripts, styles, images and
 * connections (fetch and, by CSP 3's 'self', its WebSocket); no inline
 * script or style, no plugins, never framed, no <base> or form hijacking.
 */
export const WEB_UI_CSP = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "font-src 'self'",
  "connect-src 'self'",
  "manifest-src 'self'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join("; ");

const TYPES: Record<string, string> = {
  ".js": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".svg": "image/svg+xml",
  ".png": "image/png",
  ".woff2": "font/woff2",
  ".json": "application/json; charset=utf-8",
};

interface Asset {
  body: Uint8Array<ArrayBuffer>;
  type: string;
}

interface Bundle {
  index: string;
  /** Hashed file names under assets/, as built: nothing else is served. */
  assets: Map<string, Asset>;
}

function escapeAttribute(value: string): string {
  return value.replace(/&/g, "&amp;").replace(/"/g, "&quot;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
}

async function loadBundle(distDir: string): Promise<Bundle> {
  const index = await readFile(path.join(distDir, "index.html"), "utf8");
  const assets = new Map<string, Asset>();
  const names = await readdir(path.join(distDir, "assets")).catch(() => [] as string[]);
  for (const name of names) {
    const type = TYPES[path.extname(name)];
    if (type === undefined) continue;
    assets.set(name, { body: new Uint8Array(await readFile(path.join(distDir, "assets", name))), type });
  }
  return { index, assets };
}

const notFound = () => new Response("Not found", { status: 404, headers: { "content-type": "text/plain; charset=utf-8" } });

/**
 * The web client's routes: `/` (index.html, never cached, never framed,
 * under WEB_UI_CSP) and `/assets/<hashed name>` (cached for a year: a new
 * build has new names). The bundle is read once, on the first request.
 */
export function webUiRoutes(options: WebUiOptions): Route[] {
  const load = bundleLoader(options.distDir);
  const page = async (request: Request, serverContext: Record<string, unknown>): Promise<Response | undefined> => {
    if (!readable(request)) return undefined;
    let index: string;
    try {
      index = (await load()).index;
    } catch {
      return notBuilt();
    }
    const token = options.devToken !== undefined && options.trusted(request, serverContext) ? options.devToken : "";
    return pageResponse(request, index.replace(DEV_TOKEN_META, `<meta name="todo-dev-token" content="${escapeAttribute(token)}">`));
  };
  const asset = async (request: Request): Promise<Response | undefined> => {
    if (!readable(request)) return notFound();
    // Names are compared as sent, never decoded: only the built files exist here.
    const name = new URL(request.url).pathname.slice("/assets/".length);
    const file = (await load().catch(() => undefined))?.assets.get(name);
    return file ? assetResponse(request, file) : notFound();
  };
  return [
    { path: "/", handle: page },
    { path: "/index.html", handle: page },
    { path: "/assets/", handle: asset },
  ];
}

/** Reads the bundle on first use and keeps it; a missing build is retried on the next request rather than remembered. */
function bundleLoader(distDir: string): () => Promise<Bundle> {
  let bundle: Promise<Bundle> | undefined;
  return () => {
    bundle ??= loadBundle(distDir);
    bundle.catch(() => (bundle = undefined));
    return bundle;
  };
}

function readable(request: Request): boolean {
  return request.method === "GET" || request.method === "HEAD";
}

function notBuilt(): Response {
  return new Response("The web client is not built: run `npm run web:build`, or restart with `npm start`.", {
    status: 503,
    headers: { "content-type": "text/plain; charset=utf-8", "retry-after": "5" },
  });
}

function pageResponse(request: Request, html: string): Response {
  const headers = {
    "content-type": "text/html; charset=utf-8",
    "cache-control": "no-store",
    "content-security-policy": WEB_UI_CSP,
  };
  return new Response(request.method === "HEAD" ? null : html, { status: 200, headers });
}

function assetResponse(request: Request, file: Asset): Response {
  const headers = {
    "content-type": file.type,
    "content-length": String(file.body.length),
    "cache-control": "public, max-age=31536000, immutable",
  };
  return new Response(request.method === "HEAD" ? null : file.body, { status: 200, headers });
}
