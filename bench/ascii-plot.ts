/**
 * A small line plot for the terminal (and for Markdown code blocks): y
 * against x, one character cell per bucket, with the y range on the left and
 * optional shaded x spans (an outage) drawn under the curve.
 */

export interface PlotOptions {
  width?: number;
  height?: number;
  /** How the y axis labels read, e.g. (v) => `${v.toFixed(0)} MB`. */
  formatY?: (value: number) => string;
  /** The x axis' unit, printed under it. */
  xLabel?: string;
  /** Spans of x drawn as shading behind the curve, with a legend. */
  spans?: { from: number; to: number; label: string }[];
}

export function asciiPlot(points: readonly { x: number; y: number }[], options: PlotOptions = {}): string {
  if (points.length === 0) return "(no samples)";
  const width = options.width ?? 60;
  const height = options.height ?? 12;
  const formatY = options.formatY ?? ((value: number) => value.toFixed(1));
  const xs = points.map((point) => point.x);
  const ys = points.map((point) => point.y);
  const xMin = Math.min(...xs);
  const xMax = Math.max(...xs);
  let yMin = Math.min(...ys);
  let yMax = Math.max(...ys);
  if (yMax === yMin) {
    yMax += 1;
    yMin -= 1;
  }
  const column = (x: number) => (xMax === xMin ? 0 : Math.round(((x - xMin) / (xMax - xMin)) * (width - 1)));
  const row = (y: number) => Math.round(((y - yMin) / (yMax - yMin)) * (height - 1));

  const grid: string[][] = Array.from({ length: height }, () => Array.from({ length: width }, () => " "));
  for (const span of options.spans ?? []) {
    for (let c = Math.max(0, column(span.from)); c <= Math.min(width - 1, column(span.to)); c += 1) {
      for (const line of grid) line[c] = "░";
    }
  }
  // Each column shows the highest sample that falls in it, joined to the previous column by a vertical run.
  const top = new Map<number, number>();
  for (const point of points) {
    const c = column(point.x);
    top.set(c, Math.max(top.get(c) ?? Number.NEGATIVE_INFINITY, point.y));
  }
  let previous: number | undefined;
  for (let c = 0; c < width; c += 1) {
    const y = top.get(c);
    if (y === undefined) continue;
    const r = row(y);
    if (previous !== undefined && Math.abs(previous - r) > 1) {
      const [low, high] = previous < r ? [previous + 1, r - 1] : [r + 1, previous - 1];
      for (let between = low; between <= high; between += 1) grid[height - 1 - between]![c] = "│";
    }
    grid[height - 1 - r]![c] = "●";
    previous = r;
  }

  const labels = grid.map((_, index) => {
    const r = height - 1 - index;
    if (r === height - 1) return formatY(yMax);
    if (r === 0) return formatY(yMin);
    if (r === Math.round((height - 1) / 2)) return formatY(yMin + ((yMax - yMin) * r) / (height - 1));
    return "";
  });
  const labelWidth = Math.max(...labels.map((label) => label.length));
  const lines = grid.map((line, index) => `${labels[index]!.padStart(labelWidth)} ┤${line.join("")}`);
  lines.push(`${" ".repeat(labelWidth)} └${"─".repeat(width)}`);
  const left = String(Math.round(xMin));
  const right = String(Math.round(xMax));
  lines.push(`${" ".repeat(labelWidth + 2)}${left}${right.padStart(width - left.length)}`);
  if (options.xLabel) lines.push(`${" ".repeat(labelWidth + 2)}${options.xLabel.padStart(Math.floor((width + options.xLabel.length) / 2))}`);
  for (const span of options.spans ?? []) lines.push(`${" ".repeat(labelWidth + 2)}░ ${span.label}`);
  return lines.join("\n");
}
