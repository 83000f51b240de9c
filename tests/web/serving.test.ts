import { request as httpRequest } from "node:http";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ensureWebBuild, sourceHash, WEB_DIST_DIR, webBuildIsCurrent } from "../../src/server/web-ui/build.js";
import { WEB_UI_CSP } from "../../src/server/web-ui/serve.js";
import { startTestServer, type TestServer } from "../helpers/server.js";

const DEV_TOKEN = "dev-token-for-same-origin-loopback-pages-only";

/** A raw GET, with exactly these headers (fetch would add its own Sec-Fetch-* and Origin rules). */
function get(
  url: string,
  headers: Record<string, string> = {},
  method = "GET",
): Promise<{ status: number; headers: Record<string, string | string[] | undefined>; body: string }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(url, { method, headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (chunk: Buffer) => chunks.push(chunk));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString("utf8") }));
    });
    req.on("error", reject);
    req.end();
  });
}

describe("serving the web client (WEB_UI)", () => {
  let on: TestServer;
  let off: TestServer;

  beforeAll(async () => {
    await ensureWebBuild();
    on = await startTestServer({ webUi: { distDir: WEB_DIST_DIR, devToken: DEV_TOKEN } });
    off = await startTestServer();
  });
  afterAll(async () => {
    await on?.close();
    await off?.close();
  });

  it("should serve index.html at / with the dev token for a same-origin loopback request, never cached, never framed, under a strict CSP", async () => {
    const page = await get(`${on.baseUrl}/`, { accept: "text/html", "sec-fetch-site": "none" });
    expect(page.status).toBe(200);
    expect(page.headers["content-type"]).toBe("text/html; charset=utf-8");
    expect(page.headers["cache-control"]).toBe("no-store");
    expect(page.headers["x-frame-options"]).toBe("DENY");
    expect(page.headers["content-security-policy"]).toBe(WEB_UI_CSP);
    expect(WEB_UI_CSP).not.toContain("unsafe");
    expect(page.headers["x-request-id"]).toBeTruthy();
    expect(page.body).toContain(`<meta name="todo-dev-token" content="${DEV_TOKEN}">`);
  });

  it("should leave the dev token out for another origin's page, another host name, or when no token is configured", async () => {
    const port = new URL(on.baseUrl).port;
    const crossSite = await get(`${on.baseUrl}/`, { "sec-fetch-site": "cross-site" });
    const otherOrigin = await get(`${on.baseUrl}/`, { origin: "http://127.0.0.1:1" });
    const rebinding = await get(`${on.baseUrl}/`, { host: `evil.example:${port}` });
    for (const answer of [crossSite, otherOrigin, rebinding]) {
      expect(answer.status).toBe(200);
      expect(answer.body).not.toContain(DEV_TOKEN);
      expect(answer.body).toContain('<meta name="todo-dev-token" content="">');
    }
  });

  it("should serve the hashed assets for a year and nothing else from disk", async () => {
    const page = await get(`${on.baseUrl}/`);
    const script = /src="(\/assets\/[^"]+\.js)"/.exec(page.body)?.[1];
    expect(script).toBeDefined();
    const asset = await get(`${on.baseUrl}${script}`);
    expect(asset.status).toBe(200);
    expect(asset.headers["content-type"]).toBe("text/javascript; charset=utf-8");
    expect(asset.headers["cache-control"]).toBe("public, max-age=31536000, immutable");
    const head = await get(`${on.baseUrl}${script}`, {}, "HEAD");
    expect(head.status).toBe(200);
    expect(head.body).toBe("");
    for (const path of [
      "/assets/nope.js",
      "/assets/../package.json",
      "/assets/%2e%2e%2fpackage.json",
      "/assets/%E0%A4%A",
      "/assets/",
      "/.build-hash",
      "/web/dist/index.html",
    ]) {
      const answer = await get(`${on.baseUrl}${path}`);
      expect(answer.status, path).toBe(404);
      expect(answer.body, path).not.toContain("todo-assistant-api");
    }
    expect((await get(`${on.baseUrl}/`, {}, "POST")).status).not.toBe(200);
  });

  it("should not serve it when WEB_UI is off, and keep /graphql behind its token", async () => {
    expect((await get(`${off.baseUrl}/`)).status).toBe(404);
    expect((await get(`${off.baseUrl}/index.html`)).status).toBe(404);
    const graphql = await fetch(`${on.url}`, { method: "POST", headers: { "content-type": "application/json" }, body: '{"query":"{ __typename }"}' });
    expect(graphql.status).toBe(401);
  });

  it("should build only when web/ or the schema changed: the stored hash matches the sources", async () => {
    expect(await webBuildIsCurrent()).toBe(true);
    expect(await ensureWebBuild()).toBe(false);
    expect(await sourceHash()).toBe(await sourceHash());
  });
});
