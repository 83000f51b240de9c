import type { IncomingMessage } from "node:http";

const LOOPBACK_HOSTS = new Set(["localhost", "127.0.0.1", "[::1]"]);

function isLoopbackAddress(address: string | undefined): boolean {
  if (address === undefined) return false;
  return address === "::1" || address.startsWith("127.") || address.startsWith("::ffff:127.");
}

function hostnameOf(host: string | null): string | undefined {
  if (host === null) return undefined;
  try {
    return new URL(`http://${host}`).hostname;
  } catch {
    return undefined;
  }
}

/**
 * True only for a request from this machine, addressed to a loopback name,
 * made by a page of this very origin (or typed into the address bar). Pages
 * carrying the dev token are served to nothing else:
 * - the peer address keeps other machines out;
 * - the Host check defeats DNS rebinding (evil.example resolving to 127.0.0.1);
 * - Origin and Sec-Fetch-Site keep out pages of other origins, other local ports included.
 */
export function isSameOriginLoopback(request: Request, nodeRequest: IncomingMessage | undefined): boolean {
  if (!isLoopbackAddress(nodeRequest?.socket.remoteAddress)) return false;
  const host = request.headers.get("host");
  const hostname = hostnameOf(host);
  if (hostname === undefined || !(LOOPBACK_HOSTS.has(hostname) || hostname.startsWith("127."))) return false;
  const origin = request.headers.get("origin");
  if (origin !== null && origin !== `http://${host}`) return false;
  const site = request.headers.get("sec-fetch-site");
  return site === null || site === "same-origin" || site === "none";
}
