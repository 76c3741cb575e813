/**
 * The demo, what `deno task demo` calls: planned into a wall-clock budget counted from process start
 * (docs/DESIGN.md 3). Tunes the model's kernels into the autotune cache for at most `TUNE_SHARE` of
 * the budget (the biggest matmuls first; a warm cache measures nothing), times a short generation of
 * the untrained model (which also compiles the decoder), trains the demo recipe (`DEMO_CONFIG`,
 * runtime/model/config.ts) on the Brown corpus with the step count planned so the cosine schedule
 * ends where the budget leaves room for the final validation and the continuation
 * (runtime/train/budget.ts), and continues a prompt through the PHD KV cache
 * (runtime/infer/generate.ts).
 */
import { type Config, configSpec, DEMO_CONFIG } from "../model/config.ts";
import { generate } from "../infer/generate.ts";
import { ByteTokenizer } from "../data/tokenizer.ts";
import { initParams, ModelParams } from "../model/params.ts";
import type { KernelContext } from "../gpu/kernel.ts";
import type { AttentionSpec } from "../../dsl/spec.ts";
import { loadRunConfig } from "../host/config_file.ts";
import { brownCorpus } from "../host/corpus.ts";
import { hostContext } from "../host/gpu_options.ts";
import type { Progress } from "../host/progress.ts";
import { DEFAULT_TUNE_CACHE } from "../host/tune_cache.ts";
import { checkpointOutputs, guardOutputs } from "../host/outputs.ts";
import { autotune } from "./autotune.ts";
import { runTraining, type TrainingReport } from "./train.ts";

/** The prompt the demo continues. */
export const DEMO_PROMPT = "The committee said that the";

/**
 * The most of the budget kernel tuning may take. Measured on llvmpipe (bench/RESULTS.md, Demo):
 * tuning the demo's shapes from a cold cache takes about this share and the tuned steps repay it
 * within the same run.
 */
export const TUNE_SHARE = 0.2;

/** Bytes generated to time the decoder before training (the estimate scales from these). */
const PROBE_TOKENS = 16;

/**
 * Sampling of the continuation: a low temperature and a short top-k keep a byte model to the
 * words it has learned (at 1.0 a model at ~2 nats/byte spells non-words every few letters).
 */
const SAMPLING = { temperature: 0.6, topK: 10 };

/** What `runDemo` is asked. */
export interface DemoOptions {
  /** The whole demo's budget in minutes from process start. */
  minutes: number;
  /** Train exactly this many steps instead of to the budget. */
  steps?: number;
  /** A config file to train instead of the demo recipe. */
  config?: string;
  /** Tune new shapes (false: use the cache as it is). */
  tune: boolean;
  /** The folder of the checkpoint and pictures. */
  out: string;
  /** Replace existing files there that are not earlier outputs of ours. */
  force?: boolean;
  prompt: string;
  maxNewTokens: number;
  log?: (line: string) => void;
  progress?: (format: string) => Progress;
  /** Sees the continuation's bytes as they are generated. */
  onText?: (bytes: Uint8Array) => void;
}

/** The training report plus the budget's figures and the continuation. */
export type DemoReport = TrainingReport & {
  budget_seconds: number;
  within_budget: boolean;
  tune_seconds: number;
  tuned_shapes: number;
  untuned_shapes: number;
  generation_estimate_seconds: number;
  prompt: string;
  continuation: string;
};

/** Seconds a `generate` of `n` bytes takes on untrained weights (its pipelines then compiled). */
async function timeGeneration(
  ctx: KernelContext,
  config: Config,
  spec: AttentionSpec,
  o: { prompt: ArrayLike<number>; n: number },
) {
  const params = new ModelParams(ctx, config.model);
  try {
    params.upload(initParams(config.model, { seed: config.train.seed, std: 0.02 }));
    const t0 = performance.now();
    const { tokens } = await generate(ctx, params, spec, {
      prompts: [o.prompt],
      maxNewTokens: o.n,
      sampling: { ...SAMPLING, seed: config.train.seed },
    });
    return { seconds: (performance.now() - t0) / 1000, tokens: tokens[0] };
  } finally {
    params.destroy();
  }
}

/** Tunes the config's shapes within `TUNE_SHARE` of the budget (see the file's header). */
async function tuneWithin(
  ctx: KernelContext,
  config: Config,
  budgetMs: number,
  log: (l: string) => void,
) {
  const t0 = performance.now();
  const r = await autotune(
    { quick: true, kernels: "matmul,attention", cache: DEFAULT_TUNE_CACHE },
    // Shape by shape (the candidates' lines would be eight per shape).
    (l) => /^(\[|warning)/.test(l) && log(`tune ${l}`),
    { ctx, config, deadline: TUNE_SHARE * budgetMs },
  );
  const seconds = (performance.now() - t0) / 1000;
  const tuned = r.rows.filter((x) => x.measured).length;
  if (tuned + r.skipped > 0) {
    log(
      `tuned ${tuned} shapes in ${seconds.toFixed(0)} s` +
        (r.skipped ? ` (${r.skipped} left to the next run)` : ""),
    );
  }
  return { tune_seconds: seconds, tuned_shapes: tuned, untuned_shapes: r.skipped };
}

/** The demo (see the file's header): tune, probe the decoder, train, generate. */
export async function runDemo(o: DemoOptions): Promise<DemoReport> {
  const log = o.log ?? (() => {});
  const budgetMs = o.minutes * 60_000; // performance.now() counts from process start
  const config = structuredClone(o.config ? (await loadRunConfig(o.config)).config : DEMO_CONFIG);
  const out = `${o.out}/model.safetensors`;
  const inputs = o.config ? [{ path: o.config, flag: "--config" }] : [];
  await guardOutputs(checkpointOutputs(out, "--out"), inputs, o);
  if (o.steps) config.train.steps = o.steps;
  const spec = configSpec(config.phd);
  log(
    `PHD demo: ${spec.name}, ${config.model.num_hidden_layers} layers, hidden ` +
      `${config.model.hidden_size}, ${config.train.batch_size}x${config.train.seq_len} bytes per ` +
      `step of the Brown corpus (unigram entropy 3.04, bigram 2.41 nats/byte), ` +
      (o.steps ? `${o.steps} steps` : `${o.minutes} min budget`),
  );
  const ctx = await hostContext();
  const corpus = await brownCorpus();
  const tuned = o.tune
    ? await tuneWithin(ctx, config, budgetMs, log)
    : { tune_seconds: 0, tuned_shapes: 0, untuned_shapes: 0 };
  const tok = new ByteTokenizer();
  const prompt = tok.encode(o.prompt);
  const probe = await timeGeneration(ctx, config, spec, { prompt, n: PROBE_TOKENS });
  // The probe's time includes the prompt's prefill, so scaling it overestimates a little.
  const genSeconds = probe.seconds * o.maxNewTokens / PROBE_TOKENS;
  log(`untrained, it continues: ${JSON.stringify(o.prompt + tok.decode(probe.tokens))}`);
  const { report, trainer } = await runTraining(
    {
      config,
      spec,
      out,
      evalBefore: true,
      log: o.log,
      progress: o.progress,
      deadline: o.steps ? undefined : budgetMs - genSeconds * 1000,
    },
    ctx,
    corpus,
  );
  const { tokens } = await generate(ctx, trainer.params, trainer.spec, {
    prompts: [prompt],
    maxNewTokens: o.maxNewTokens,
    sampling: { ...SAMPLING, seed: config.train.seed },
    onTokens: (chunk) => o.onText?.(new Uint8Array(chunk.tokens[0])),
  });
  const seconds = performance.now() / 1000;
  return {
    ...report,
    budget_seconds: budgetMs / 1000,
    within_budget: seconds <= budgetMs / 1000,
    ...tuned,
    generation_estimate_seconds: genSeconds,
    seconds,
    prompt: o.prompt,
    continuation: tok.decode(tokens[0]),
  };
}
