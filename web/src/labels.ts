/**
 * Labels normalised the way the server stores them (src/domain/bounds.ts):
 * trimmed, empty ones dropped, repeats that differ only in case dropped (the
 * first spelling stays). Length and count are left to the server, whose
 * field-level error then names the label at fault.
 */
export function withLabels(current: readonly string[], typed: string): string[] {
  const next = [...current];
  for (const part of typed.split(",")) {
    const label = part.trim();
    if (label === "" || next.some((kept) => kept.toLowerCase() === label.toLowerCase())) continue;
    next.push(label);
  }
  return next;
}

export function withoutLabel(current: readonly string[], index: number): string[] {
  return current.filter((_, at) => at !== index);
}

export function sameLabels(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((label, index) => label === b[index]);
}
