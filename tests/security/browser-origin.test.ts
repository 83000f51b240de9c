import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import type { Browser } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { browserAvailable, launchChromium } from "../helpers/browser.js";
import { startTestServer, type TestServer } from "../helpers/server.js";

const DEV_TOKEN = "dev-token-only-for-this-machine-same-origin-pages";

/** What a hostile page on another local port tries, reporting each outcome. */
function attackerPage(api: string, ws: string): string {
  return `<!doctype html><meta charset="utf-8"><title>attacker</title><body><script>
  window.results = (async () => {
    const out = {};
    const attempt = async (name, fn) => { try { out[name] = String(await fn()); } catch (e) { out[name] = "error: " + e.name; } };
    await attempt("cors", () => fetch(${JSON.stringify(api)}, { headers: { accept: "text/html" } }).then((r) => r.text()));
    await attempt("corsCredentials", () => fetch(${JSON.stringify(api)}, { credentials: "include", headers: { accept: "text/html" } }).then((r) => r.text()));
    await attempt("noCors", () => fetch(${JSON.stringify(api)}, { mode: "no-cors" }).then((r) => r.text()));
    await attempt("iframe", () => new Promise((resolve) => {
      const frame = document.createElement("iframe");
      frame.src = ${JSON.stringify(api)};
      frame.onload = () => { try { resolve(frame.contentDocument ? frame.contentDocument.documentElement.outerHTML : "no document"); } catch (e) { resolve("error: " + e.name); } };
      setTimeout(() => resolve("timeout"), 3000);
      document.body.appendChild(frame);
    }));
    await attempt("websocket", () => new Promise((resolve) => {
      const socket = new WebSocket(${JSON.stringify(ws)}, "graphql-transport-ws");
      socket.onopen = () => { socket.close(); resolve("open"); };
      socket.onerror = () => resolve("refused");
    }));
    return out;
  })();
</script>`;
}

describe.runIf(browserAvailable())("a page on another loopback port, in Chromium", () => {
  let server: TestServer;
  let attacker: Server;
  let browser: Browser;
  let attackerUrl: string;

  beforeAll(async () => {
    server = await startTestServer({ graphiql: { devHeaders: { Authorization: `Bearer ${DEV_TOKEN}` } } });
    attacker = createServer((_req, res) => {
      res.writeHead(200, { "content-type": "text/html; charset=utf-8" }).end(attackerPage(server.url, server.wsUrl));
    });
    await new Promise<void>((resolve) => attacker.listen(0, "127.0.0.1", resolve));
    attackerUrl = `http://127.0.0.1:${(attacker.address() as AddressInfo).port}/`;
    browser = await launchChromium();
  }, 60_000);

  afterAll(async () => {
    await browser?.close();
    await new Promise((resolve) => attacker?.close(resolve));
    await server?.close();
  });

  it("should not be able to read the dev token, nor open the API's WebSocket", async () => {
    const page = await browser.newPage();
    await page.goto(attackerUrl);
    const results = (await page.evaluate("window.results")) as Record<string, string>;
    expect(Object.keys(results).sort()).toEqual(["cors", "corsCredentials", "iframe", "noCors", "websocket"]);
    for (const [attempt, outcome] of Object.entries(results)) expect(outcome, attempt).not.toContain(DEV_TOKEN);
    expect(results.cors).toBe("error: TypeError");
    expect(results.corsCredentials).toBe("error: TypeError");
    expect(results.noCors).toBe("");
    expect(results.websocket).toBe("refused");
    await page.close();
  });

  it("should show the token to GraphiQL opened on the API's own origin (the control)", async () => {
    const page = await browser.newPage();
    await page.goto(server.url);
    expect(await page.content()).toContain(DEV_TOKEN);
    await page.close();
  });
});
