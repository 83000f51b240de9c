import { z } from "zod";
import { durationRule, parseDuration, type DurationBounds } from "../lib/duration.js";
import { Setting } from "./setting.js";

// The kinds of setting there are. Each one is zod's own parsing (z.coerce,
// z.stringbool, z.enum, z.url, z.ipv4 …) plus the rule a bad value is told.

interface Doc {
  doc: string;
  shownDefault?: string;
}

/** A whole number from min to max ("1e3", "0x50" and "2.5" are refused); `default: undefined` leaves it unset. */
export function int<D extends number | undefined>(
  env: string,
  o: Doc & { default: D; min: number; max: number; rule?: string },
): Setting<number | D> {
  const schema = z
    .string()
    .regex(/^\d+$/)
    .pipe(z.coerce.number<string>().int().min(o.min).max(o.max))
    .optional()
    .transform((value) => value ?? o.default);
  return new Setting(env, schema, { rule: o.rule ?? `an integer (${o.min}–${o.max})`, doc: o.doc, shownDefault: o.shownDefault }, o.default);
}

export function port(env: string, o: Doc & { default: number }): Setting<number> {
  return int(env, { ...o, min: 0, max: 65_535, rule: "a port number (0–65535)" });
}

/** true/1 or false/0; unset stays undefined, for a default that depends on other settings. */
export function flag(env: string, o: Doc): Setting<boolean | undefined> {
  const schema = z.stringbool({ truthy: ["true", "1"], falsy: ["false", "0"], case: "sensitive" }).optional();
  return new Setting(env, schema, { rule: "true or false", ...o });
}

export function oneOf<const V extends readonly [string, ...string[]], D extends V[number] | undefined>(
  env: string,
  values: V,
  o: Doc & { default: D; rule?: string },
): Setting<V[number] | D> {
  const schema = z
    .enum(values)
    .optional()
    .transform((value): V[number] | D => value ?? o.default);
  return new Setting<V[number] | D>(
    env,
    schema,
    { rule: o.rule ?? `one of ${values.join(", ")}`, doc: o.doc, shownDefault: o.shownDefault },
    o.default,
  );
}

export function text<D extends string | undefined>(env: string, o: Doc & { default: D }): Setting<string | D> {
  const schema = z
    .string()
    .optional()
    .transform((value) => value ?? o.default);
  return new Setting(env, schema, { rule: "any text", doc: o.doc, shownDefault: o.shownDefault }, o.default);
}

/** Text that is never quoted back, with a minimum length in bytes when it is a key. */
export function secret(env: string, o: Doc & { minBytes?: number }): Setting<string | undefined> {
  const minBytes = o.minBytes ?? 0;
  const schema = z
    .string()
    .refine((value) => Buffer.byteLength(value) >= minBytes)
    .optional();
  return new Setting(env, schema, {
    rule: minBytes > 0 ? `at least ${minBytes} bytes` : "any text",
    doc: o.doc,
    shownDefault: o.shownDefault,
    quiet: true,
  });
}

/** A URL with one of `protocols` ("https", "postgresql"); not quoted back, as it may hold a password. */
export function url(env: string, o: Doc & { protocols: readonly string[] }): Setting<string | undefined> {
  const starts = o.protocols.map((protocol) => `${protocol}://`).join(" or ");
  const schema = z
    .url({
      protocol: new RegExp(`^(?:${o.protocols.join("|")})$`),
      // A URL, but of another kind: say which kinds are wanted (anything else falls back to the rule).
      error: (issue) => ("note" in issue && issue.note === "Invalid protocol" ? `must start with ${starts}` : undefined),
    })
    .optional();
  return new Setting(env, schema, { rule: `a URL starting with ${starts}`, doc: o.doc, shownDefault: o.shownDefault, quiet: true });
}

/** Seconds, written "3600", "90s", "30m", "12h" or "7d" (src/lib/duration.ts); unset stays undefined. */
export function duration(env: string, o: Doc & { bounds: DurationBounds }): Setting<number | undefined> {
  const schema = z
    .string()
    .transform((value) => parseDuration(value))
    .pipe(z.number().min(o.bounds.minSeconds).max(o.bounds.maxSeconds))
    .optional();
  return new Setting(env, schema, { rule: durationRule(o.bounds), doc: o.doc, shownDefault: o.shownDefault });
}

/** An IP address (v4 or v6) or an RFC 1123 host name; unset stays undefined. */
export function host(env: string, o: Doc): Setting<string | undefined> {
  const schema = z.union([z.ipv4(), z.ipv6(), z.hostname()]).optional();
  return new Setting(env, schema, { rule: "an IP address or a host name (e.g. 127.0.0.1, 0.0.0.0, ::, localhost)", ...o });
}

/** scheme://host[:port] exactly, as browsers send it in Origin. */
function isOrigin(value: string): boolean {
  try {
    const parsed = new URL(value);
    return (parsed.protocol === "http:" || parsed.protocol === "https:") && parsed.origin === value && !value.includes("*");
  } catch {
    return false;
  }
}

/** A comma-separated list of browser origins; each bad one is named. Unset: none. */
export function origins(env: string, o: Doc): Setting<string[]> {
  const entry = z.string().refine(isOrigin, {
    error: (issue) => `must list origins like https://app.example.com (no path, no wildcard); ${JSON.stringify(issue.input)} is not one`,
  });
  const schema = z
    .string()
    .transform((list) =>
      list
        .split(",")
        .map((origin) => origin.trim())
        .filter((origin) => origin !== ""),
    )
    .pipe(z.array(entry))
    .optional()
    .transform((list) => list ?? []);
  return new Setting(
    env,
    schema,
    { rule: "comma-separated origins (scheme://host[:port])", doc: o.doc, shownDefault: o.shownDefault ?? "none", quiet: true },
    [],
  );
}

/** Text that passes `test` (the rule says what that is); `default` when unset. */
export function matching<D extends string | undefined>(
  env: string,
  o: Doc & { default: D; rule: string; test: (value: string) => boolean },
): Setting<string | D> {
  const schema = z
    .string()
    .refine(o.test)
    .optional()
    .transform((value) => value ?? o.default);
  return new Setting(env, schema, { rule: o.rule, doc: o.doc, shownDefault: o.shownDefault }, o.default);
}

/** nats://, tls:// or a bare host:port, as the NATS client takes them. */
function isNatsServer(value: string): boolean {
  try {
    const parsed = new URL(value.includes("://") ? value : `nats://${value}`);
    return ["nats:", "tls:"].includes(parsed.protocol) && parsed.hostname !== "" && (parsed.pathname === "" || parsed.pathname === "/");
  } catch {
    return false;
  }
}

/** A comma-separated list of NATS servers (a cluster's seeds); each bad one is named, never the whole value (it may hold a password). */
export function natsServers(env: string, o: Doc & { default: string }): Setting<string[]> {
  const entry = z.string().refine(isNatsServer, {
    error: (issue) => `must list servers like nats://host:4222; ${JSON.stringify(String(issue.input).replace(/\/\/[^@/]*@/, "//…@"))} is not one`,
  });
  const schema = z
    .string()
    .optional()
    .transform((list) =>
      (list ?? o.default)
        .split(",")
        .map((server) => server.trim())
        .filter((server) => server !== ""),
    )
    .pipe(z.array(entry).min(1));
  return new Setting(
    env,
    schema,
    { rule: "comma-separated NATS servers (nats://host:port)", doc: o.doc, shownDefault: o.shownDefault, quiet: true },
    [o.default],
  );
}
