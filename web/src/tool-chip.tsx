import { useId, useState } from "react";

export interface ToolCallView {
  id: string;
  name: string;
  arguments: unknown;
  result?: unknown;
  error?: string | null;
}

/** A short, one-line view of a JSON value: `title: "buy milk"`, `3 items`, `ok`. */
export function summarise(value: unknown, max = 60): string {
  let text: string;
  if (value === null || value === undefined) text = "";
  else if (typeof value === "string") text = JSON.stringify(value);
  else if (Array.isArray(value)) text = `${value.length} item${value.length === 1 ? "" : "s"}`;
  else if (typeof value === "object") {
    const entries = Object.entries(value as Record<string, unknown>).filter(([, v]) => v !== null && v !== undefined && typeof v !== "object");
    // Ids say little to a reader; show them only when nothing else is there.
    const telling = entries.filter(([k]) => k !== "id" && !k.endsWith("Id"));
    text = (telling.length > 0 ? telling : entries).map(([k, v]) => `${k}: ${typeof v === "string" ? JSON.stringify(v) : String(v)}`).join(", ");
    if (text === "") text = `{${Object.keys(value).join(", ")}}`;
  } else text = String(value);
  return text.length > max ? `${text.slice(0, max - 1)}…` : text;
}

/** A tool call as a compact chip (name, arguments → result); a click shows both in full. */
export function ToolChip({ call }: { call: ToolCallView }) {
  const [open, setOpen] = useState(false);
  const detailsId = useId();
  const outcome = call.error ? `error: ${call.error}` : call.result === undefined || call.result === null ? "…" : summarise(call.result, 40);
  return (
    <div className={call.error ? "tool-chip tool-chip-error" : "tool-chip"} data-testid="tool-chip">
      <button type="button" aria-expanded={open} aria-controls={detailsId} onClick={() => setOpen(!open)}>
        <span className="tool-name">{call.name}</span>
        <span className="tool-args">({summarise(call.arguments)})</span>
        <span className="tool-result">→ {outcome}</span>
      </button>
      {open && (
        <div id={detailsId} className="tool-details">
          <h4>Arguments</h4>
          <pre>{JSON.stringify(call.arguments, null, 2)}</pre>
          <h4>{call.error ? "Error" : "Result"}</h4>
          <pre>{call.error ?? JSON.stringify(call.result ?? null, null, 2)}</pre>
        </div>
      )}
    </div>
  );
}
