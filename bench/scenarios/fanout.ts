/**
 * B3 and B5 (bench/fanout.ts does the work): fan-out to 1,000, 5,000 and
 * 15,000 graphql-ws sockets, commit → receipt p50/p99 and events lost against
 * a raw LISTEN client on the same commits; B5 is the server's RSS per idle
 * subscribed socket at the largest N. BENCH_FANOUT overrides the sizes.
 */
import { figure, type Figure } from "../lib/figure.js";
import type { BenchContext } from "../lib/scenario.js";
import { FANOUT_GOALS, runFanout } from "../fanout.js";

export async function runFanoutScenario(ctx: BenchContext, ids: ReadonlySet<string>): Promise<Figure[]> {
  const given = process.env.BENCH_FANOUT?.split(",")
    .map(Number)
    .filter((n) => n > 0);
  // B5 alone needs only the 15,000 run.
  const sizes = given ?? (ids.has("B3") ? [1000, 5000, 15000] : [15000]);
  const secret = crypto.randomUUID() + crypto.randomUUID();
  const figures: Figure[] = [];
  for (const sockets of sizes) {
    ctx.log(`B3: fan-out to ${sockets} sockets…`);
    const result = await runFanout({ url: ctx.url, secret, sockets, commits: Number(process.env.BENCH_FANOUT_COMMITS ?? 100) });
    const goal = FANOUT_GOALS.p99Ms(sockets);
    const note = `${result.commits} commits, each to ${Math.round(sockets / 10)} sockets; ${result.duplicates} duplicates; all connected and subscribed in ${(result.connectMs / 1000).toFixed(1)} s`;
    ctx.log(
      `  p50 ${result.p50Ms.toFixed(1)} ms, p99 ${result.p99Ms.toFixed(1)} ms, lost ${result.lost}; raw LISTEN p99 ${result.rawP99Ms.toFixed(1)} ms; ${(result.rssPerSocketBytes / 1024).toFixed(1)} KB/socket`,
    );
    if (ids.has("B3")) {
      const n = sockets.toLocaleString("en");
      figures.push(
        figure({ id: "B3", figure: `fan-out ${n}: commit→receipt p50`, ours: result.p50Ms, baseline: result.rawP50Ms, unit: "ms", goal: "—", note }),
        figure({
          id: "B3",
          figure: `fan-out ${n}: commit→receipt p99`,
          ours: result.p99Ms,
          baseline: result.rawP99Ms,
          unit: "ms",
          goal: `≤ ${goal} ms`,
          met: result.p99Ms <= goal,
        }),
        figure({
          id: "B3",
          figure: `fan-out ${n}: events lost (of ${result.expected})`,
          ours: result.lost,
          baseline: result.rawLost,
          unit: "events",
          goal: "0",
          met: result.lost === 0 && result.duplicates === 0,
        }),
      );
    }
    if (ids.has("B5") && sockets === Math.max(...sizes)) {
      figures.push(
        figure({
          id: "B5",
          figure: `RSS per idle subscribed WebSocket at ${sockets.toLocaleString("en")}`,
          ours: result.rssPerSocketBytes / 1024,
          baseline: null,
          unit: "KB",
          goal: "≤ 50 KB",
          met: result.rssPerSocketBytes <= FANOUT_GOALS.rssPerSocketBytes,
          note: `heap ${(result.heapPerSocketBytes / 1024).toFixed(1)} KB per socket; server RSS after a full GC, minus before the sockets`,
        }),
      );
    }
  }
  return figures;
}
