/**
 * Training throughput: tokens/s and MFU of whole training steps (forward, backward, clipping,
 * AdamW on one encoder) for the demo model and a larger one at K = 1, 2, 3 (PHD-CSWA; K = 1 is
 * vanilla), next to the adapter's measured matmul GFLOP/s (the MFU denominator). Synthetic token
 * data (throughput does not depend on the text). Median step time of several steps after warm-up.
 *
 *   deno task bench train [--json] [--quick] [--steps N]
 */
import { type Config, DEFAULT_CONFIG } from "../runtime/config.ts";
import { createContext } from "../runtime/context.ts";
import { Rng } from "../runtime/data.ts";
import { measureMatmulGflops, Trainer } from "../runtime/train.ts";
import type { Layout } from "../compiler/layout.ts";

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

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

export async function main(args: string[]) {
  const json = args.includes("--json"), quick = args.includes("--quick");
  const at = args.indexOf("--steps");
  const steps = at >= 0 ? Number(args[at + 1]) : quick ? 2 : 4;
  if (!Number.isInteger(steps) || steps < 1) {
    console.error("error: --steps needs a positive integer");
    Deno.exit(1);
  }
  const ctx = await createContext();
  const gflops = await measureMatmulGflops(ctx);
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
        const trainer = new Trainer(ctx, cfg, corpus, { layout });
        trainer.trainStep(); // warm-up: pipelines, first uploads
        await ctx.gpu.device.queue.onSubmittedWorkDone();
        const times: number[] = [];
        for (let i = 0; i < steps; i++) {
          const t0 = performance.now();
          trainer.trainStep();
          await ctx.gpu.device.queue.onSubmittedWorkDone();
          times.push(performance.now() - t0);
        }
        const ms = median(times), t = cfg.train;
        const row = {
          model: name,
          params: trainer.params.count,
          spec: trainer.spec.name,
          K,
          layout,
          batch: t.batch_size,
          seq_len: t.seq_len,
          step_ms: Math.round(ms),
          tokens_per_s: Math.round(t.batch_size * t.seq_len / (ms / 1000)),
          model_gflops: +(trainer.flopsPerStep / ms / 1e6).toFixed(3),
          mfu: +(trainer.flopsPerStep / ms / 1e6 / gflops).toFixed(3),
        };
        results.push(row);
        if (!json) console.error(JSON.stringify(row));
        trainer.destroy();
      }
    }
  }
  const adapter = { name: ctx.gpu.adapterName, matmul_gflops: +gflops.toFixed(3) };
  if (json) {
    console.log(JSON.stringify({ adapter, results }));
    return;
  }
  console.log(
    `adapter: ${adapter.name}, matmul ${adapter.matmul_gflops} GFLOP/s (best of 3, 1024x512x512)`,
  );
  console.log("| model | params | spec | layout | step ms | tokens/s | model GFLOP/s | MFU |");
  console.log("| ----- | ------ | ---- | ------ | ------- | -------- | ------------- | --- |");
  for (const x of results) {
    console.log(
      `| ${x.model} | ${x.params} | ${x.spec} | ${x.layout} | ${x.step_ms} | ${x.tokens_per_s} | ` +
        `${x.model_gflops} | ${(100 * x.mfu).toFixed(0)}% |`,
    );
  }
}
