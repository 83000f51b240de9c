import type { IncomingMessage } from "node:http";
import { isIPv4 } from "node:net";

function isLoopbackAddress(address: string | undefined): boolean {
  if (address === undefined) return false;
  return address === "::1" || address.startsWith("127.") || address.startsWith("::ffff:127.");
}

/** `name[:port]` or `[v6][:port]`, as sent; undefined for anything else. */
const HOST_HEADER = /^(\[[^\]]*\]|[^:[\]]+)(?::\d{1,5})?$/;

/**
 * Whether a Host header names this machine in a way no DNS answer can change:
 * `localhost`, `[::1]`, or an IPv4 loopback address (127.0.0.0/8) written as a
 * strict dotted quad. A name that merely starts with "127." (127.0.0.1.nip.io,
 * 127.evil.example) is an ordinary DNS name an attacker may point anywhere,
 * and the looser IPv4 spellings (127.1, 0x7f.0.0.1, a trailing dot) are refused
 * too: browsers send the canonical form.
 */
export function isLoopbackHost(host: string | null): boolean {
  if (host === null) return false;
  const name = HOST_HEADER.exec(host)?.[1]?.toLowerCase();
  if (name === undefined) return false;
  if (name === "localhost" || name === "[::1]") return true;
  return isIPv4(name) && name.split(".")[0] === "127";
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
  if (!isLoopbackHost(host)) return false;
  const origin = request.headers.get("origin");
  if (origin !== null && origin !== `http://${host}`) return false;
  const site = request.headers.get("sec-fetch-site");
  return site === null || site === "same-origin" || site === "none";
}
