/**
 * Training throughput: tokens/s of whole training steps (forward, backward, clipping, AdamW on
 * one encoder) for the demo model and a larger one at K = 1, 2, 3 (PHD-CSWA; K = 1 is vanilla),
 * as MFU where the adapter's fp32 peak is known (runtime/gpu/peak.ts), else as a share of the
 * adapter's measured matmul GFLOP/s, named so. Synthetic token
 * data (throughput does not depend on the text). Median step time of several steps after warm-up.
 *
 * Each configuration runs with the default matmul variants and, side by side, with the autotuner's
 * where .cache/autotune.json has them.
 *
 *   deno task bench train [--json] [--quick] [--steps N] [--write]
 */
import { type Config, DEFAULT_CONFIG } from "../runtime/model/config.ts";
import { createContext } from "../runtime/gpu/context.ts";
import { gpuOptionsFromEnv } from "../runtime/host/gpu_options.ts";
import { Rng } from "../runtime/data/rng.ts";
import { measureMatmulGflops, Trainer } from "../runtime/train/trainer.ts";
import { countedKernels, loadKernelChoosers } from "../runtime/host/tune_cache.ts";
import { writeResults } from "./results.ts";
import { type Utilization, utilization } from "../runtime/gpu/peak.ts";
import { median } from "../runtime/measure/stats.ts";
import { timeRuns } from "../runtime/measure/timing.ts";
import type { Layout } from "../compiler/layout.ts";

/** The two model sizes: the demo's, and one 2x wider and 2x deeper. */
function models(): { name: string; config: Config }[] {
  const demo = structuredClone(DEFAULT_CONFIG);
  const larger = structuredClone(DEFAULT_CONFIG);
  larger.model = {
    ...larger.model,
    hidden_size: 128,
    intermediate_size: 384,
    num_hidden_layers: 4,
    num_attention_heads: 4,
    num_key_value_heads: 2,
  };
  return [{ name: "demo", config: demo }, { name: "larger", config: larger }];
}

/** Median step time of `steps` training steps after one warm-up step. */
async function stepMs(trainer: Trainer, steps: number): Promise<number> {
  const queue = trainer.ctx.gpu.device.queue;
  const times = await timeRuns(() => {
    trainer.trainStep();
    return queue.onSubmittedWorkDone();
  }, { rounds: steps });
  return median(times, { even: "upper" });
}

export async function main(args: string[]) {
  const json = args.includes("--json"), quick = args.includes("--quick");
  const write = args.includes("--write");
  const at = args.indexOf("--steps");
  const steps = at >= 0 ? Number(args[at + 1]) : quick ? 2 : 4;
  if (!Number.isInteger(steps) || steps < 1) {
    console.error("error: --steps needs a positive integer");
    Deno.exit(1);
  }
  const t0 = performance.now();
  const ctx = await createContext(gpuOptionsFromEnv());
  // The autotuner's variants where .cache/autotune.json has them (read once, counted per config).
  const choosers = await loadKernelChoosers(ctx, { warn: (l) => console.error(l) });
  const gflops = await measureMatmulGflops(ctx, choosers.matmul);
  const r = new Rng(1);
  const stream = Uint32Array.from({ length: 1 << 16 }, () => r.int(256));
  const corpus = { train: stream, val: stream };
  const results = [];
  for (const { name, config } of quick ? models().slice(0, 1) : models()) {
    for (const K of [1, 2, 3]) {
      for (const layout of ["grouped", "interleaved"] as Layout[]) {
        if (K === 1 && layout === "interleaved") continue; // one layout at K = 1
        const cfg = structuredClone(config);
        cfg.phd = { ...cfg.phd, K, variant: K === 1 ? "causal" : "phd-cswa" };
        // Default matmul and attention variants, then (side by side) the autotuner's where
        // .cache/autotune.json has them for this config's shapes, as `deno task train` uses them.
        const tuned = countedKernels(choosers);
        for (const mode of ["default", "tuned"] as const) {
          const trainer = new Trainer(ctx, cfg, corpus, {
            layout,
            matmul: mode === "tuned" ? tuned.matmul : undefined,
            attention: mode === "tuned" ? tuned.attention : undefined,
          });
          if (mode === "tuned" && tuned.hits() === 0) {
            trainer.destroy();
            continue;
          }
          const ms = await stepMs(trainer, steps), t = cfg.train;
          const row = {
            model: name,
            params: trainer.params.count,
            spec: trainer.spec.name,
            K,
            layout,
            matmul: mode,
            batch: t.batch_size,
            seq_len: t.seq_len,
            step_ms: Math.round(ms),
            tokens_per_s: Math.round(t.batch_size * t.seq_len / (ms / 1000)),
            model_gflops: +(trainer.flopsPerStep / ms / 1e6).toFixed(3),
            ...utilization(trainer.flopsPerStep / ms * 1e3, gflops, ctx.gpu.peak),
          };
          results.push(row);
          if (!json) console.error(JSON.stringify(row));
          trainer.destroy();
        }
      }
    }
  }
  const adapter = {
    name: ctx.gpu.adapterName,
    matmul_gflops: +gflops.toFixed(3),
    peak_tflops: ctx.gpu.peak?.tflops ?? null,
    peak_source: ctx.gpu.peak?.source ?? null,
  };
  const share = (x: Utilization) =>
    x.mfu === null ? `${(100 * x.matmul_share).toFixed(0)}%` : `${(100 * x.mfu).toFixed(1)}%`;
  const shareName = ctx.gpu.peak
    ? `MFU: model FLOP/s over the adapter's fp32 peak (${ctx.gpu.peak.tflops} TFLOP/s, ${ctx.gpu.peak.source}).`
    : "no known fp32 peak for this adapter (PHD_PEAK_TFLOPS states one), so no MFU: " +
      "matmul rate share is model FLOP/s over the best measured matmul rate " +
      `(${adapter.matmul_gflops} GFLOP/s, best of 3 runs of a 1024x512x512 matmul).`;
  if (json) {
    console.log(JSON.stringify({ adapter, steps, results }));
    return;
  }
  const flags = args.filter((a) => a !== "--write").join(" ");
  const lines = [
    "## Training throughput",
    "",
    `\`npx --yes deno@2.9.6 task bench train${flags ? " " + flags : ""}\` on ${adapter.name} (${
      ((performance.now() - t0) / 1000).toFixed(0)
    } s): median of ${steps} whole training steps (forward, backward, clipping, AdamW; one ` +
    "submit each) after a warm-up step; synthetic tokens. K = 1 is vanilla causal, K > 1 " +
    `PHD-CSWA (W 16, C 32). ${shareName} ` +
    "matmul: the default variant, or the autotuner's (`deno task autotune`, demo shapes) in the " +
    "same run.",
    "",
    `| model | params | spec | layout | matmul | batch x seq | step ms | tokens/s | model GFLOP/s | ${
      ctx.gpu.peak ? "MFU" : "matmul rate share"
    } |`,
    "| ----- | -----: | ---- | ------ | ------ | ----------- | ------: | -------: | ------------: | --: |",
    ...results.map((x) =>
      `| ${x.model} | ${x.params} | ${x.spec} | ${x.layout} | ${x.matmul} | ${x.batch}x${x.seq_len} | ` +
      `${x.step_ms} | ${x.tokens_per_s} | ${x.model_gflops} | ${share(x)} |`
    ),
  ];
  const md = lines.join("\n");
  console.log(md);
  if (write) console.error(`wrote ${(await writeResults("Training throughput", md)).join(", ")}`);
}
