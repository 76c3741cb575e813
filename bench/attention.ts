/**
 * Attention forward benchmark: vanilla causal (K = 1) vs fused and dense PHD-CSWA (grouped
 * layout) at the same L, timed on the device queue (median of repeats after a warm-up), plus a
 * no-op kernel that measures dispatch overhead. Usage:
 *   deno run -A bench/attention.ts [--L 1024] [--K 3] [--d 64] [--heads 1] [--reps 3] [--json]
 */
import { causal, phdCswa } from "../dsl/presets.ts";
import type { AttentionSpec } from "../dsl/spec.ts";
import type { Layout } from "../compiler/layout.ts";
import { classifyTiles } from "../compiler/tiles.ts";
import { requestGpu } from "../runtime/device.ts";
import { PipelineCache, storageBuffer } from "../runtime/gpu.ts";
import { type AttentionConfig, FlashAttention } from "../runtime/attention.ts";

const HELP = "usage: deno run -A bench/attention.ts [--L 1024] [--K 3] [--d 64] [--heads 1] " +
  "[--reps 3] [--json]";

function flags(args: string[]) {
  const o = { L: 1024, K: 3, d: 64, heads: 1, reps: 3, json: false };
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    if (a === "--help") {
      console.log(HELP);
      Deno.exit(0);
    } else if (a === "--json") o.json = true;
    else if (/^--(L|K|d|heads|reps)$/.test(a)) {
      const v = Number(args[++i]);
      if (!Number.isInteger(v) || v < 1) throw new Error(`${a} needs a positive integer`);
      o[a.slice(2) as "L"] = v;
    } else throw new Error(`unknown argument ${a}; ${HELP}`);
  }
  return o;
}

async function main() {
  let o;
  try {
    o = flags(Deno.args);
  } catch (e) {
    console.error((e as Error).message);
    Deno.exit(2);
  }
  const gpu = await requestGpu();
  const cache = new PipelineCache(gpu.device);
  const { device } = gpu;
  const time = async (record: (enc: GPUCommandEncoder) => void) => {
    const once = async () => {
      const enc = device.createCommandEncoder();
      record(enc);
      const t0 = performance.now();
      device.queue.submit([enc.finish()]);
      await device.queue.onSubmittedWorkDone();
      return performance.now() - t0;
    };
    await once(); // warm-up: compiles the pipeline
    const ts: number[] = [];
    for (let i = 0; i < o.reps; i++) ts.push(await once());
    return ts.sort((a, b) => a - b)[ts.length >> 1];
  };
  const noop = device.createComputePipeline({
    layout: "auto",
    compute: {
      module: device.createShaderModule({ code: "@compute @workgroup_size(1) fn main() {}" }),
      entryPoint: "main",
    },
  });
  const overhead = await time((enc) => {
    const p = enc.beginComputePass();
    p.setPipeline(noop);
    p.dispatchWorkgroups(1);
    p.end();
  });
  const cases: [string, AttentionSpec, Layout, AttentionConfig["variant"]][] = [
    ["causal_fused", causal(), "interleaved", "fused"],
    ["phd_cswa_fused_grouped", phdCswa({ K: o.K }), "grouped", "fused"],
    ["phd_cswa_fused_interleaved", phdCswa({ K: o.K }), "interleaved", "fused"],
    ["phd_cswa_dense_grouped", phdCswa({ K: o.K }), "grouped", "dense"],
  ];
  const results: Record<string, { ms: number; keptFraction: number; gflops: number }> = {};
  for (const [name, spec, layout, variant] of cases) {
    const fa = new FlashAttention(gpu, cache, spec, { headDim: o.d, layout, variant });
    const N = spec.K * o.L, n = o.heads * N * o.d;
    const rnd = () => Float32Array.from({ length: n }, () => Math.random() * 2 - 1);
    const io = {
      q: storageBuffer(device, rnd()),
      k: storageBuffer(device, rnd()),
      v: storageBuffer(device, rnd()),
      o: storageBuffer(device, n * 4),
      lse: storageBuffer(device, o.heads * N * 4),
    };
    const ms = await time((enc) => fa.forward(enc, io, { L: o.L, heads: o.heads }));
    const { tileQ, tileK } = fa.params;
    const kept = variant === "dense"
      ? 1
      : classifyTiles(spec, { L: o.L, tileQ, tileK, layout }).keptFraction;
    // 4 d FLOPs per visited (query, key) pair: q.k and p.v.
    const gflops = 4 * o.d * N * N * kept * o.heads / (ms * 1e6);
    results[name] = { ms, keptFraction: kept, gflops };
    for (const b of Object.values(io)) b.destroy();
  }
  const base = results.causal_fused.ms, fused = results.phd_cswa_fused_grouped.ms;
  const summary = {
    adapter: gpu.adapterName,
    L: o.L,
    K: o.K,
    d: o.d,
    heads: o.heads,
    dispatchOverheadMs: overhead,
    results,
    cswaOverCausal: fused / base,
    denseOverFused: results.phd_cswa_dense_grouped.ms / fused,
  };
  if (o.json) console.log(JSON.stringify(summary));
  else {
    console.log(`${gpu.adapterName}: L=${o.L} K=${o.K} d=${o.d} heads=${o.heads}`);
    console.log(`  no-op dispatch            ${overhead.toFixed(2)} ms`);
    for (const [k, r] of Object.entries(results)) {
      console.log(
        `  ${k.padEnd(26)} ${r.ms.toFixed(1).padStart(8)} ms  kept ${
          (r.keptFraction * 100).toFixed(1)
        }%  ${r.gflops.toFixed(2)} GFLOP/s`,
      );
    }
    console.log(
      `  fused grouped PHD-CSWA / causal = ${summary.cswaOverCausal.toFixed(2)}x (target <= 4); ` +
        `dense / fused = ${summary.denseOverFused.toFixed(2)}x (target >= 2)`,
    );
  }
}

if (import.meta.main) await main();
