/**
 * Benchmark of the compiler front end: causality proof, retention, prefill set and tile classes
 * of PHD-CSWA (and the other PHD presets) at long sequence lengths. Reports the median of several
 * runs after one warm-up (the first, cold run is shown apart: it includes JIT compilation) and the
 * size of what the analysis keeps (tile classes, per-key lifetimes, cache sizes per position).
 */
import { phd, phdCswa, phdSwa } from "../dsl/mod.ts";
import { analyze } from "../compiler/analysis/analyze.ts";
import type { Layout } from "../compiler/layout.ts";
import { median } from "../runtime/measure/stats.ts";
import { timeRuns } from "../runtime/measure/timing.ts";

/** Runs the benchmark; `--json` prints one JSON object, `--runs N` sets the repetitions. */
export async function main(args: string[]) {
  const json = args.includes("--json");
  const runsAt = args.indexOf("--runs");
  const runs = runsAt >= 0 ? Number(args[runsAt + 1]) : 5;
  if (!Number.isInteger(runs) || runs < 1) {
    console.error("error: --runs needs a positive integer");
    Deno.exit(1);
  }
  const cases = [
    ...[1024, 8192, 32768].map((L) => ({ spec: phdCswa({ K: 3, W: 16, C: 32 }), L })),
    { spec: phd({ K: 3 }), L: 32768 },
    { spec: phdSwa({ K: 3, W: 16 }), L: 32768 },
  ];
  const results = [];
  for (const { spec, L } of cases) {
    for (const layout of ["grouped", "interleaved"] as Layout[]) {
      let a = undefined as unknown as ReturnType<typeof analyze>;
      const [cold] = await timeRuns(() => a = analyze(spec, { L, layout, tile: 64 }), {
        rounds: 1,
        warmup: 0,
      });
      const parts: Record<string, number[]> = {};
      const totals = await timeRuns(() => {
        a = analyze(spec, { L, layout, tile: 64 });
        for (const [k, v] of Object.entries(a.ms)) (parts[k] ??= []).push(v);
      }, { rounds: runs, warmup: 0 });
      results.push({
        name: spec.name,
        L,
        layout,
        tile: 64,
        cold_ms: round(cold),
        median_ms: round(median(totals, { even: "upper" })),
        parts_median_ms: Object.fromEntries(
          Object.entries(parts).map(([k, v]) => [k, round(median(v, { even: "upper" }))]),
        ),
        result_kb: round(
          (a.tiles.classes.byteLength + a.retention.lifetime.byteLength +
            a.retention.cachedAfter.byteLength) / 1024,
        ),
        cache: a.retention.formula,
        prefill_tokens: a.prefill.count,
        tiles_kept: round(a.tiles.keptFraction),
      });
    }
  }
  if (json) {
    console.log(JSON.stringify({ deno: Deno.version.deno, runs, results }));
    return;
  }
  console.log(
    `analysis benchmark (deno ${Deno.version.deno}, median of ${runs} warm runs, tile 64)`,
  );
  console.log(
    "spec                    L      layout       cold ms  median ms  causal  retain  prefill  tiles  out KB  cache     prefill  kept",
  );
  for (const r of results) {
    const p = r.parts_median_ms;
    console.log(
      [
        r.name.padEnd(22),
        String(r.L).padStart(6),
        r.layout.padEnd(11),
        String(r.cold_ms).padStart(8),
        String(r.median_ms).padStart(10),
        String(p.causality).padStart(7),
        String(p.retention).padStart(7),
        String(p.prefill).padStart(8),
        String(p.tiles).padStart(6),
        String(r.result_kb).padStart(7),
        r.cache.padEnd(9),
        String(r.prefill_tokens).padStart(8),
        String(r.tiles_kept).padStart(5),
      ].join(" "),
    );
  }
  await Promise.resolve();
}

function round(x: number): number {
  return Math.round(x * 100) / 100;
}
