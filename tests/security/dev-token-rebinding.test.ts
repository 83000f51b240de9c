import { request as httpRequest } from "node:http";
import type { Browser } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ensureWebBuild, WEB_DIST_DIR } from "../../src/server/web-ui/build.js";
import { browserAvailable, launchChromium } from "../helpers/browser.js";
import { startTestServer, type TestServer } from "../helpers/server.js";

const DEV_TOKEN = "dev-token-never-for-a-dns-rebound-host-name";

/** Names an attacker controls that resolve (or are made to resolve) to 127.0.0.1: they only look like loopback. */
const REBOUND = ["127.0.0.1.attacker.example", "127.evil.example", "127.0.0.1.nip.io"];

/** Loopback only once a URL parser has rewritten them; only a strict dotted quad counts, so these are refused too. */
const NOT_DOTTED_QUADS = ["127.0.0.1.", "127.1", "0x7f.0.0.1", "127.000.0.1"];

/** Names that cannot be rebound: the loopback name and IP literals of this machine. */
const LOOPBACK = ["127.0.0.1", "localhost", "[::1]", "127.0.0.2", "127.255.255.254"];

/** GraphiQL and the web client: the two pages that may carry the dev token. */
const PAGES = ["/graphql", "/"];

/** A raw GET, with exactly these headers (fetch would set Host itself). */
function get(url: string, headers: Record<string, string>): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(url, { headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (chunk: Buffer) => chunks.push(chunk));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString("utf8") }));
    });
    req.on("error", reject);
    req.end();
  });
}

/** What a browser sends for a page of `host` that fetches its own origin, and for one typed into the address bar. */
function browserHeaders(host: string): Record<string, string>[] {
  return [
    { host, accept: "text/html", "sec-fetch-site": "same-origin", origin: `http://${host}` },
    { host, accept: "text/html", "sec-fetch-site": "same-origin" },
    { host, accept: "text/html", "sec-fetch-site": "none" },
    { host, accept: "text/html" },
  ];
}

async function startDevServer(): Promise<TestServer> {
  await ensureWebBuild();
  return startTestServer({
    graphiql: { devHeaders: { Authorization: `Bearer ${DEV_TOKEN}` } },
    webUi: { distDir: WEB_DIST_DIR, devToken: DEV_TOKEN },
  });
}

describe("the dev token against DNS rebinding", () => {
  let server: TestServer;
  let port: string;

  beforeAll(async () => {
    server = await startDevServer();
    port = new URL(server.baseUrl).port;
  }, 60_000);
  afterAll(async () => {
    await server?.close();
  });

  it("should leave the token out of GraphiQL and the web page for host names that only start like a loopback address", async () => {
    for (const name of [...REBOUND, ...NOT_DOTTED_QUADS]) {
      for (const path of PAGES) {
        for (const headers of browserHeaders(`${name}:${port}`)) {
          const answer = await get(`${server.baseUrl}${path}`, headers);
          const what = `${path} as ${JSON.stringify(headers)}`;
          expect(answer.status, what).toBe(200);
          expect(answer.body.includes(DEV_TOKEN), what).toBe(false);
        }
      }
    }
  });

  it("should still give it to localhost, [::1] and IPv4 loopback literals (the control)", async () => {
    for (const name of LOOPBACK) {
      for (const path of PAGES) {
        for (const headers of browserHeaders(`${name}:${port}`)) {
          const answer = await get(`${server.baseUrl}${path}`, headers);
          expect(answer.body.includes(DEV_TOKEN), `${path} as ${JSON.stringify(headers)}`).toBe(true);
        }
      }
    }
  });
});

describe.runIf(browserAvailable())("the dev token against DNS rebinding, in Chromium", () => {
  let server: TestServer;
  let browser: Browser;
  let port: string;

  beforeAll(async () => {
    server = await startDevServer();
    port = new URL(server.baseUrl).port;
    // Every name resolves to loopback, as an attacker's DNS would make it after the page loaded.
    browser = await launchChromium(["--host-resolver-rules=MAP * 127.0.0.1"]);
  }, 60_000);
  afterAll(async () => {
    await browser?.close();
    await server?.close();
  });

  /** Opens `path` on `host` and returns the page, plus what its same-origin fetches of both pages read. */
  async function visit(host: string, path: string): Promise<{ status: number | undefined; texts: string[] }> {
    const page = await browser.newPage();
    try {
      const response = await page.goto(`http://${host}:${port}${path}`);
      const fetched = (await page.evaluate(
        `Promise.all(${JSON.stringify(PAGES)}.map((p) => fetch(p, { headers: { accept: "text/html" } }).then((r) => r.text())))`,
      )) as string[];
      return { status: response?.status(), texts: [await page.content(), ...fetched] };
    } finally {
      await page.close();
    }
  }

  it("should not put the token in GraphiQL or the web page opened on a rebound name, nor in what they fetch", async () => {
    for (const name of REBOUND.slice(0, 3)) {
      for (const path of PAGES) {
        const { status, texts } = await visit(name, path);
        expect(status, `${name}${path}`).toBe(200);
        for (const text of texts) expect(text.includes(DEV_TOKEN), `${name}${path}`).toBe(false);
      }
    }
  });

  it("should give it to the same pages opened on 127.0.0.1 (the control)", async () => {
    for (const path of PAGES) {
      const { status, texts } = await visit("127.0.0.1", path);
      expect(status).toBe(200);
      // What the page fetched from its own origin; the rendered page itself varies (GraphiQL rewrites its DOM).
      for (const text of texts.slice(1)) expect(text.includes(DEV_TOKEN), path).toBe(true);
    }
  });
});
