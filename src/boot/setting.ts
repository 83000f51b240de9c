import { z } from "zod";

/** What the environment holds for a setting: trimmed, and a blank value counts as unset. */
export type Raw = string | undefined;

export interface SettingSpec {
  /** What a valid value is, completing "NAME must be …": `an integer (1–1000)`. */
  rule: string;
  /** What the setting does, in Markdown: the README's "Meaning" cell. */
  doc: string;
  /** The README's "Default" cell when the default is worked out at start rather than declared. */
  shownDefault?: string | undefined;
  /** Never quoted back in an error: secrets, URLs that may hold a password, lists whose message names the bad entry. */
  quiet?: boolean | undefined;
}

export type ReadResult<T> = { ok: true; value: T } | { ok: false; problems: string[] };

/**
 * One environment variable: its name, the zod schema that parses it (type,
 * bounds, default) and its documentation. Built by the kinds in
 * setting-kinds.ts and declared once, in src/boot/config.ts.
 */
export class Setting<T> {
  constructor(
    readonly env: string,
    private readonly schema: z.ZodType<T, Raw>,
    readonly spec: SettingSpec,
    /** The declared default, when there is one (for the README). */
    readonly defaultValue?: T,
  ) {}

  /** The setting's value in `env`, or one line per problem, each naming the setting. */
  read(env: NodeJS.ProcessEnv): ReadResult<T> {
    const raw = env[this.env]?.trim() || undefined;
    // Built-in checks (z.coerce, z.url, z.enum, min, max, …) all fail with the setting's rule; a refinement may say more.
    const parsed = this.schema.safeParse(raw, { error: () => `must be ${this.spec.rule}` });
    if (parsed.success) return { ok: true, value: parsed.data };
    const got = this.spec.quiet ? "" : `, got ${JSON.stringify(raw)}`;
    const messages = new Set(parsed.error.issues.map((issue) => issue.message));
    return { ok: false, problems: [...messages].map((message) => `${this.env} ${message}${got}`) };
  }
}

/** Settings grouped as the Config object is: a leaf is a Setting, a branch a section. */
export interface SettingTree {
  readonly [key: string]: Setting<unknown> | SettingTree;
}

/** The values a tree of settings reads to, in the same shape. */
export type ValuesOf<T> = T extends Setting<infer V> ? V : { -readonly [K in keyof T]: ValuesOf<T[K]> };

/** Reads every setting of the tree; each problem is added to `problems` (all of them, not just the first). */
export function readSettings<T extends SettingTree>(tree: T, env: NodeJS.ProcessEnv, problems: string[]): ValuesOf<T> {
  const values: Record<string, unknown> = {};
  for (const [key, node] of Object.entries(tree)) {
    if (!(node instanceof Setting)) {
      values[key] = readSettings(node, env, problems);
      continue;
    }
    const result = node.read(env);
    if (result.ok) values[key] = result.value;
    else problems.push(...result.problems);
  }
  return values as ValuesOf<T>;
}

/** Every setting of the tree, in declaration order. */
export function settingsOf(tree: SettingTree): Setting<unknown>[] {
  return Object.values(tree).flatMap((node) => (node instanceof Setting ? [node] : settingsOf(node)));
}
