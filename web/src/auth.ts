const STORAGE_KEY = "todo-assistant.token";

/**
 * The dev token the server put in this page: only in development, and only
 * for same-origin requests from this machine (the same rule as GraphiQL's).
 */
export function devToken(): string | undefined {
  const meta = document.querySelector<HTMLMetaElement>('meta[name="todo-dev-token"]');
  return meta?.content.trim() || undefined;
}

/** A token entered in this tab; sessionStorage, so it ends with the tab and is not shared with others. */
export function savedToken(): string | undefined {
  try {
    return sessionStorage.getItem(STORAGE_KEY)?.trim() || undefined;
  } catch {
    return undefined; // storage blocked: the token lives in memory only
  }
}

export function saveToken(token: string | undefined): void {
  try {
    if (token === undefined) sessionStorage.removeItem(STORAGE_KEY);
    else sessionStorage.setItem(STORAGE_KEY, token);
  } catch {
    // storage blocked: nothing to keep
  }
}

/** The token to use at start: one entered in this tab wins over the dev token. */
export function initialToken(): { token: string; source: "saved" | "dev" } | undefined {
  const saved = savedToken();
  if (saved !== undefined) return { token: saved, source: "saved" };
  const dev = devToken();
  return dev === undefined ? undefined : { token: dev, source: "dev" };
}

/** The `sub` of a JWT, to show who is signed in; the server alone verifies the token. */
export function subjectOf(token: string): string | undefined {
  const payload = token.split(".")[1];
  if (payload === undefined) return undefined;
  try {
    const json = JSON.parse(atob(payload.replace(/-/g, "+").replace(/_/g, "/"))) as { sub?: unknown };
    return typeof json.sub === "string" ? json.sub : undefined;
  } catch {
    return undefined;
  }
}
