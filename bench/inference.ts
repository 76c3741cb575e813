/**
 * Inference through the PHD KV cache (runtime/infer/decoder.ts) on the current adapter, side by
 * side in one run, with a small random-weight model (1 layer, hidden 32, 2 heads of 16; the costs are
 * those of attention and the per-token layers, not of what the weights say):
 *
 * - prefill time vs prompt length (128 .. 4096) at K = 4, and vs K (1, 2, 4, 8, 16, or `--K`) at a
 *   prompt of 1024, for vanilla, PHD, PHD-SWA(16) and PHD-CSWA(16, 32) (the paper's Fig. 9a): prefill runs
 *   the compiler's prefill set, so PHD and CSWA stay near vanilla while SWA grows about K x;
 * - decode latency per token vs K at a cache of 1024 positions (Fig. 9b), 16 steps per submit;
 * - the KV cache bytes of each (PHD = vanilla; SWA and CSWA add at most W-1 hidden keys).
 *
 *   deno task bench inference [--json] [--quick] [--write] [--K 2,4,..,64]
 *
 * Prefill times are the median of 5 runs taken round-robin over the variants of a sweep point
 * (1 run for prefills of more than 4096 rows), after a warm-up that builds every pipeline; they
 * run from the request to the first token on the host (host planning, GPU work, one readback). `--write` stores the plots (bench/inference_*.svg)
 * and replaces the "Inference" section of bench/RESULTS.md.
 */
import { causal, phd, phdCswa, phdSwa } from "../dsl/presets.ts";
import type { AttentionSpec } from "../dsl/spec.ts";
import { createContext } from "../runtime/gpu/context.ts";
import { gpuOptionsFromEnv } from "../runtime/host/gpu_options.ts";
import { DEFAULT_CONFIG, type ModelConfig } from "../runtime/model/config.ts";
import { Rng } from "../runtime/data/rng.ts";
import { Decoder } from "../runtime/infer/decoder.ts";
import type { KernelContext } from "../runtime/gpu/kernel.ts";
import { lineChart, type Series } from "../viz/chart.ts";
import { initParams, ModelParams } from "../runtime/model/params.ts";
import { fail, flag, writeResults } from "./results.ts";
import { median } from "../runtime/measure/stats.ts";
import { MAX_K } from "../dsl/spec.ts";

/** The window and chunk of the PHD-SWA and PHD-CSWA rows (positions; bench/scaling.ts too). */
export const W = 16, C = 32;
/** The four rows of every inference figure. */
export const VARIANTS = ["vanilla", "phd", "phd-swa", "phd-cswa"] as const;
export type Variant = typeof VARIANTS[number];

/** The bench model: small, so a sweep to 4096 positions takes minutes on llvmpipe. */
export const BENCH_MODEL: ModelConfig = {
  ...DEFAULT_CONFIG.model,
  hidden_size: 32,
  intermediate_size: 96,
  num_hidden_layers: 1,
  num_attention_heads: 2,
  num_key_value_heads: 1,
};

/** The preset of a row at K copies (vanilla is K = 1 whatever K says). */
export function specOf(v: Variant, K: number): AttentionSpec {
  if (v === "vanilla") return causal({ K: 1 });
  if (v === "phd") return phd({ K });
  if (v === "phd-swa") return phdSwa({ K, W });
  return phdCswa({ K, W, C });
}

interface PrefillRow {
  variant: Variant;
  K: number;
  P: number;
  rows: number;
  prefill_ms: number;
  plan_ms: number;
  kv_cache_bytes: number;
  hidden_window: number;
  runs: number;
}

interface DecodeRow {
  variant: Variant;
  K: number;
  batch: number;
  cache: number;
  ms_per_token: number;
  tokens_per_s: number;
  kv_cache_bytes: number;
}

/**
 * Prefill of each configuration of a group, measured round-robin (one run of each in turn, then
 * again) so that slow spells of a shared machine hit every variant alike; median per variant.
 */
async function prefillGroup(
  ctx: KernelContext,
  params: ModelParams,
  group: { variant: Variant; K: number; P: number }[],
  reps: number,
): Promise<PrefillRow[]> {
  const runs = group.map(({ variant, K, P }) => {
    const spec = specOf(variant, K), r = new Rng(P);
    return {
      variant,
      spec,
      P,
      prompt: Array.from({ length: P }, () => r.int(256)),
      dec: new Decoder(ctx, params, spec, { maxPositions: P, initialSlots: P + 2 * K }),
      times: [] as number[],
      plans: [] as number[],
      rows: 0,
    };
  });
  try {
    for (let rep = 0; rep < reps; rep++) {
      for (const x of runs) {
        // One run of SWA's big prefills: they take seconds, and their ratio is not subtle.
        if (rep > 0 && x.rows > 4096) continue;
        for await (const _ of x.dec.generate({ prompts: [x.prompt], maxNewTokens: 1 })) {
          /* drain */
        }
        x.times.push(x.dec.stats.prefillMs);
        x.plans.push(x.dec.stats.prefillPlanMs);
        x.rows = x.dec.stats.prefillRows[0];
      }
    }
    return runs.map((x) => ({
      variant: x.variant,
      K: x.spec.K,
      P: x.P,
      rows: x.rows,
      prefill_ms: +median(x.times, { even: "upper" }).toFixed(1),
      plan_ms: +median(x.plans, { even: "upper" }).toFixed(1),
      kv_cache_bytes: x.dec.stats.kv.bytes,
      hidden_window: x.dec.stats.kv.hiddenWindow,
      runs: x.times.length,
    }));
  } finally {
    for (const x of runs) x.dec.destroy();
  }
}

async function decode(
  ctx: KernelContext,
  params: ModelParams,
  variant: Variant,
  K: number,
  cache: number,
  steps: number,
  batch = 1,
): Promise<DecodeRow> {
  const spec = specOf(variant, K), r = new Rng(cache + K);
  const prompts = Array.from(
    { length: batch },
    () => Array.from({ length: cache }, () => r.int(256)),
  );
  const dec = new Decoder(ctx, params, spec, {
    batch,
    maxPositions: cache + steps,
    initialSlots: cache + steps + 2 * K,
  });
  try {
    const perToken: number[] = [];
    for (let rep = 0; rep < 3; rep++) {
      for await (const _ of dec.generate({ prompts, maxNewTokens: steps + 1 })) { /* drain */ }
      perToken.push(dec.stats.decodeMs / steps);
    }
    const ms = median(perToken, { even: "upper" });
    return {
      variant,
      K: spec.K,
      batch,
      cache,
      ms_per_token: +ms.toFixed(2),
      tokens_per_s: +(batch * 1000 / ms).toFixed(1),
      kv_cache_bytes: dec.stats.kv.bytes,
    };
  } finally {
    dec.destroy();
  }
}

export async function main(args: string[]) {
  const json = args.includes("--json"), quick = args.includes("--quick");
  const write = args.includes("--write");
  const kFlag = flag(args, "--K");
  const unknown = args.filter((a, i) =>
    !["--json", "--quick", "--write", "--K"].includes(a) && args[i - 1] !== "--K"
  );
  if (unknown.length) fail(`unknown flag ${unknown[0]} (flags: --json --quick --write --K)`);
  const Ks = kFlag === undefined ? (quick ? [1, 2, 4] : [1, 2, 4, 8, 16]) : kSweep(kFlag);
  const log = (s: string) => json || console.error(s);
  const ctx = await createContext(gpuOptionsFromEnv());
  const params = new ModelParams(ctx, BENCH_MODEL);
  params.upload(initParams(BENCH_MODEL, { seed: 1 }));
  const t0 = performance.now();
  const lengths = quick ? [128, 256, 512] : [128, 256, 512, 1024, 2048, 4096];
  const fixedK = 4, fixedP = quick ? 256 : 1024;
  const decodeCache = quick ? 256 : 1024, decodeSteps = quick ? 16 : 32;
  // Warm-up: every pipeline of every spec (prefill and decode shapes).
  for (const v of VARIANTS) {
    for (const K of v === "vanilla" ? [1] : Ks.filter((k) => k > 1)) {
      await decode(ctx, params, v, K, 8, 2);
    }
  }
  log(`warm-up ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  const prefills: PrefillRow[] = [];
  const seen = new Set<string>();
  const group = async (configs: { variant: Variant; K: number; P: number }[]) => {
    const fresh = configs.filter((c) => {
      const key = `${c.variant}:${c.variant === "vanilla" ? 1 : c.K}:${c.P}`;
      return !seen.has(key) && (seen.add(key), true);
    });
    for (const row of await prefillGroup(ctx, params, fresh, 5)) {
      prefills.push(row);
      log(JSON.stringify(row));
    }
  };
  for (const P of lengths) await group(VARIANTS.map((variant) => ({ variant, K: fixedK, P })));
  await group(
    Ks.flatMap((K) =>
      VARIANTS.filter((v) => (v === "vanilla") === (K === 1)).map((variant) => ({
        variant,
        K,
        P: fixedP,
      }))
    ),
  );
  const decodes: DecodeRow[] = [];
  for (const K of Ks) {
    for (const v of VARIANTS) {
      if ((v === "vanilla") !== (K === 1)) continue;
      const row = await decode(ctx, params, v, K, decodeCache, decodeSteps);
      decodes.push(row);
      log(JSON.stringify(row));
    }
  }
  const batched = await decode(ctx, params, "phd-cswa", fixedK, decodeCache, decodeSteps, 4);
  decodes.push(batched);
  log(JSON.stringify(batched));
  const seconds = (performance.now() - t0) / 1000;
  const adapter = ctx.gpu.adapterName;
  const model = {
    ...BENCH_MODEL,
    parameters: params.count,
    W,
    C,
  };
  params.destroy();
  if (json) {
    console.log(
      JSON.stringify({ adapter, model, quick, seconds, prefill: prefills, decode: decodes }),
    );
  }
  const flags = args.filter((a) => a !== "--json" && a !== "--write").join(" ");
  const command = `npx --yes deno@2.9.6 task bench inference${flags ? " " + flags : ""}`;
  const md = report({ adapter, command, prefills, decodes, fixedK, fixedP, decodeCache, seconds });
  if (!json) console.log(md);
  if (write) {
    const plots = charts(prefills, decodes, fixedK, fixedP, decodeCache, adapter);
    const written = await writeResults("Inference", md, plots);
    log(`wrote ${written.join(", ")}`);
  }
}

/** The K sweep of `--K a,b,..`: vanilla (K = 1) and the listed K, each at most the DSL's MAX_K. */
function kSweep(list: string): number[] {
  const Ks = list.split(",").map(Number);
  if (Ks.some((k) => !Number.isInteger(k) || k < 1 || k > MAX_K)) {
    fail(`--K needs integers 1..${MAX_K} separated by commas, got "${list}"`);
  }
  return [...new Set([1, ...Ks])].sort((a, b) => a - b);
}

/** The plots: prefill vs prompt length, prefill vs K (relative to vanilla), decode vs K. */
function charts(
  prefills: PrefillRow[],
  decodes: DecodeRow[],
  fixedK: number,
  fixedP: number,
  cache: number,
  adapter: string,
): Record<string, string> {
  const vsP: Series[] = VARIANTS.map((v) => ({
    name: v === "vanilla" ? "vanilla" : `${v} K=${fixedK}`,
    points: prefills.filter((r) => r.variant === v && (v === "vanilla" || r.K === fixedK))
      .map((r) => [r.P, r.prefill_ms] as [number, number]),
  }));
  const vanillaAt = prefills.find((r) => r.variant === "vanilla" && r.P === fixedP)?.prefill_ms;
  const vsK: Series[] = VARIANTS.filter((v) => v !== "vanilla").map((v) => ({
    name: v,
    points: prefills.filter((r) => r.variant === v && r.P === fixedP)
      .map((r) => [r.K, r.prefill_ms / (vanillaAt ?? NaN)] as [number, number]),
  }));
  const dec: Series[] = ["phd", "phd-swa", "phd-cswa"].map((v) => ({
    name: v,
    points: decodes.filter((r) => (r.variant === v || r.variant === "vanilla") && r.batch === 1)
      .map((r) => [r.K, r.ms_per_token] as [number, number]),
  }));
  return {
    "inference_prefill.svg": lineChart(vsP, {
      title: `Prefill time vs prompt length (K = ${fixedK}), ${adapter}`,
      xLabel: "prompt length (positions)",
      yLabel: "prefill ms",
      logX: true,
    }),
    "inference_prefill_k.svg": lineChart(vsK, {
      title: `Prefill time relative to vanilla vs K (prompt ${fixedP})`,
      xLabel: "K (copies per token)",
      yLabel: "prefill time / vanilla",
      logX: true,
    }),
    "inference_decode.svg": lineChart(dec, {
      title: `Decode latency per token vs K (cache ${cache} positions)`,
      xLabel: "K (copies per token); K = 1 is vanilla",
      yLabel: "ms per token",
      logX: true,
    }),
  };
}

/** The "Inference" section of bench/RESULTS.md. */
function report(o: {
  adapter: string;
  command: string;
  prefills: PrefillRow[];
  decodes: DecodeRow[];
  fixedK: number;
  fixedP: number;
  decodeCache: number;
  seconds: number;
}): string {
  const vanilla = new Map(
    o.prefills.filter((r) => r.variant === "vanilla").map((r) => [r.P, r.prefill_ms]),
  );
  const vanillaKv = new Map(
    o.prefills.filter((r) => r.variant === "vanilla").map((r) => [r.P, r.kv_cache_bytes]),
  );
  const lines = [
    "## Inference (PHD KV cache)",
    "",
    `Command: \`${o.command}\` (${o.seconds.toFixed(0)} s). Adapter: ${o.adapter}. Model: random ` +
    `weights, 1 layer, hidden 32, 2 heads of 16 (1 KV head), MLP 96, vocabulary 256; W = ${W}, ` +
    `C = ${C}. Prefill: request to first token on the host, median of 5 runs taken in turn over ` +
    `the variants of a row group (1 run above 4096 rows); "rows" are the tokens of the expanded sequence prefill computes (the compiler's ` +
    `prefill set); "x vanilla" is the ratio to the vanilla prefill of the same prompt in the same ` +
    `run; KV bytes hold K and V of every cached key (f32), "hidden" the hidden keys among them.`,
    "",
    "| variant | K | prompt | rows | prefill ms | x vanilla | host plan ms | KV bytes | hidden |",
    "| ------- | - | ------ | ---- | ---------- | --------- | ------------ | -------- | ------ |",
  ];
  const sorted = [...o.prefills].sort((a, b) =>
    a.P - b.P || a.K - b.K || VARIANTS.indexOf(a.variant) - VARIANTS.indexOf(b.variant)
  );
  for (const r of sorted) {
    const ratio = r.prefill_ms / (vanilla.get(r.P) ?? NaN);
    const kvNote = r.variant !== "vanilla" && r.kv_cache_bytes === vanillaKv.get(r.P) ? " (=)" : "";
    lines.push(
      `| ${r.variant} | ${r.K} | ${r.P} | ${r.rows} | ${r.prefill_ms} | ${ratio.toFixed(2)} | ` +
        `${r.plan_ms} | ${r.kv_cache_bytes}${kvNote} | ${r.hidden_window} |`,
    );
  }
  lines.push(
    "",
    `Decode: ${o.decodeCache}-position prompt, then one token per step with 16 steps per submit ` +
      "(one readback each), median of 3 runs; ms per token is per step (all sequences of the batch).",
    "",
    "| variant | K | batch | ms per token | tokens/s | KV bytes |",
    "| ------- | - | ----- | ------------ | -------- | -------- |",
  );
  for (const r of o.decodes) {
    lines.push(
      `| ${r.variant} | ${r.K} | ${r.batch} | ${r.ms_per_token} | ${r.tokens_per_s} | ${r.kv_cache_bytes} |`,
    );
  }
  const cswa = o.prefills.find((r) =>
    r.variant === "phd-cswa" && r.K === o.fixedK && r.P === o.fixedP
  );
  const swa = o.prefills.filter((r) => r.variant === "phd-swa" && r.P === o.fixedP);
  const v = vanilla.get(o.fixedP);
  if (cswa && v) {
    lines.push(
      "",
      `At K = ${o.fixedK}, prompt ${o.fixedP}: PHD-CSWA prefill ${
        (cswa.prefill_ms / v).toFixed(2)
      }x ` +
        `vanilla; PHD-SWA ${
          swa.map((r) => `${(r.prefill_ms / v).toFixed(1)}x at K = ${r.K}`).join(", ")
        }.`,
    );
  }
  lines.push(
    "",
    "![prefill vs prompt length](inference_prefill.svg) " +
      "![prefill vs K](inference_prefill_k.svg) ![decode vs K](inference_decode.svg)",
  );
  return lines.join("\n");
}
