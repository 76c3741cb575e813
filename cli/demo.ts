/**
 * `deno task demo [--minutes M] [--steps N] [--config F.json] [--no-tune] [--json]`: the main job,
 * planned into a wall-clock budget counted from process start (docs/DESIGN.md 6). Tunes the demo
 * model's kernels into the autotune cache for at most `TUNE_SHARE` of the budget (the biggest
 * matmuls first; a warm cache measures nothing), times a short generation of the untrained model
 * (which also compiles the decoder), trains the demo recipe (`DEMO_CONFIG`,
 * runtime/model/config.ts) on the Brown corpus with the step count planned so the cosine schedule
 * ends where the budget leaves room for the final validation and the continuation
 * (runtime/train/budget.ts), prints the validation loss before and after, writes the checkpoint
 * and the loss picture, and continues a prompt through the PHD KV cache
 * (runtime/infer/generate.ts).
 */
import { type Config, configSpec, DEMO_CONFIG } from "../runtime/model/config.ts";
import { generate } from "../runtime/infer/generate.ts";
import { ByteTokenizer } from "../runtime/data/tokenizer.ts";
import { initParams, ModelParams } from "../runtime/model/params.ts";
import { loadRunConfig } from "../runtime/host/config_file.ts";
import { DEFAULT_TUNE_CACHE } from "../runtime/host/tune_cache.ts";
import type { KernelContext } from "../runtime/gpu/kernel.ts";
import type { AttentionSpec } from "../dsl/spec.ts";
import { utilizationText } from "../runtime/gpu/peak.ts";
import { newCommand, parseArgv, positiveInt, runCommand, UsageError } from "./args.ts";
import { brownCorpus, kernelContext, runTraining } from "./train.ts";
import { autotune } from "./autotune.ts";

/** The prompt the demo continues. */
const DEMO_PROMPT = "The committee said that the";

/**
 * The most of the budget kernel tuning may take. Measured on llvmpipe (bench/RESULTS.md, Demo):
 * tuning the demo's shapes from a cold cache takes about this share and the tuned steps repay it
 * within the same run.
 */
const TUNE_SHARE = 0.2;

/** Bytes generated to time the decoder before training (the estimate scales from these). */
const PROBE_TOKENS = 16;

/**
 * Sampling of the continuation: a low temperature and a short top-k keep a byte model to the
 * words it has learned (at 1.0 a model at ~2 nats/byte spells non-words every few letters).
 */
const SAMPLING = { temperature: 0.6, topK: 10 };

function minutesFlag(v: string): number {
  const x = Number(v);
  if (v.trim() === "" || !(x > 0) || !Number.isFinite(x)) {
    throw new UsageError(`--minutes must be a number > 0 (the whole demo's budget), got "${v}"`);
  }
  return x;
}

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

async function main() {
  const cmd = newCommand(
    "demo",
    "Train a small PHD-CSWA transformer on the Brown corpus and generate text, all within a time budget.",
  )
    .option(
      "--minutes <m>",
      "the whole demo's budget from process start (tuning, training, evaluation, generation)",
      minutesFlag,
      4.5,
    )
    .option("--steps <n>", "train exactly N steps instead of to the budget", positiveInt("--steps"))
    .option("--config <file>", "JSON config to train instead of the demo recipe")
    .option("--no-tune", "use the autotune cache as it is (tune no new shapes)")
    .option("--out <dir>", "where the checkpoint and pictures go", "out/demo")
    .option("--prompt <text>", "text to continue", DEMO_PROMPT)
    .option("--max-new-tokens <n>", "bytes to generate", positiveInt("--max-new-tokens"), 200)
    .option(
      "--json",
      "end with one JSON object (val_loss_before, val_loss_after, seconds, budget_seconds, ...)",
    )
    .option("--quiet", "no progress output")
    .addHelpText(
      "after",
      "\nThe budget counts from process start. Tuning gets at most " +
        `${100 * TUNE_SHARE}% of it (the winners go to ${DEFAULT_TUNE_CACHE},` +
        "\nso the next run measures nothing); the step count is planned from the first steps'" +
        "\ntimes so the cosine schedule ends when the final validation and the continuation" +
        "\nstill fit, and re-planned if the machine's load changes. --steps N fixes the count" +
        "\n(a reproducible run; the budget then bounds only the tuning).",
    );
  const o = parseArgv(cmd).opts();
  const budgetMs = o.minutes * 60_000; // performance.now() counts from process start
  const config = structuredClone(o.config ? (await loadRunConfig(o.config)).config : DEMO_CONFIG);
  if (o.steps) config.train.steps = o.steps;
  const spec = configSpec(config.phd);
  const say = (s: string) => o.quiet || console.error(s);
  say(
    `PHD demo: ${spec.name}, ${config.model.num_hidden_layers} layers, hidden ` +
      `${config.model.hidden_size}, ${config.train.batch_size}x${config.train.seq_len} bytes per ` +
      `step of the Brown corpus (unigram entropy 3.04, bigram 2.41 nats/byte), ` +
      (o.steps ? `${o.steps} steps` : `${o.minutes} min budget`),
  );
  const ctx = await kernelContext();
  const corpus = await brownCorpus();
  let tuneSeconds = 0, tunedShapes = 0, skippedShapes = 0;
  if (o.tune) {
    const t0 = performance.now();
    const r = await autotune(
      { quick: true, kernels: "matmul,attention", cache: DEFAULT_TUNE_CACHE },
      // Shape by shape (the candidates' lines would be eight per shape).
      (l) => /^(\[|warning)/.test(l) && say(`tune ${l}`),
      { ctx, config, deadline: TUNE_SHARE * budgetMs },
    );
    tuneSeconds = (performance.now() - t0) / 1000;
    tunedShapes = r.rows.filter((x) => x.measured).length;
    skippedShapes = r.skipped;
    if (tunedShapes + skippedShapes > 0) {
      say(
        `tuned ${tunedShapes} shapes in ${tuneSeconds.toFixed(0)} s` +
          (skippedShapes ? ` (${skippedShapes} left to the next run)` : ""),
      );
    }
  }
  const tok = new ByteTokenizer();
  const prompt = tok.encode(o.prompt);
  const probe = await timeGeneration(ctx, config, spec, { prompt, n: PROBE_TOKENS });
  // The probe's time includes the prompt's prefill, so scaling it overestimates a little.
  const genSeconds = probe.seconds * o.maxNewTokens / PROBE_TOKENS;
  say(`untrained, it continues: ${JSON.stringify(o.prompt + tok.decode(probe.tokens))}`);
  const { report, trainer } = await runTraining(
    {
      config,
      spec,
      out: `${o.out}/model.safetensors`,
      evalBefore: true,
      quiet: o.quiet,
      deadline: o.steps ? undefined : budgetMs - genSeconds * 1000,
    },
    ctx,
    corpus,
  );
  const decoder = new TextDecoder();
  const enc = new TextEncoder();
  if (!o.json) Deno.stdout.writeSync(enc.encode(`\n${o.prompt}`));
  const { tokens } = await generate(ctx, trainer.params, trainer.spec, {
    prompts: [prompt],
    maxNewTokens: o.maxNewTokens,
    sampling: { ...SAMPLING, seed: config.train.seed },
    onTokens: (chunk) => {
      if (o.json) return;
      const bytes = new Uint8Array(chunk.tokens[0]);
      Deno.stdout.writeSync(enc.encode(decoder.decode(bytes, { stream: true })));
    },
  });
  const text = tok.decode(tokens[0]);
  const seconds = performance.now() / 1000;
  const budget = {
    budget_seconds: budgetMs / 1000,
    within_budget: seconds <= budgetMs / 1000,
    tune_seconds: tuneSeconds,
    tuned_shapes: tunedShapes,
    untuned_shapes: skippedShapes,
    generation_estimate_seconds: genSeconds,
  };
  if (o.json) {
    console.log(
      JSON.stringify({ ...report, ...budget, seconds, prompt: o.prompt, continuation: text }),
    );
  } else {
    console.log(
      `\n\nvalidation loss ${report.val_loss_before!.toFixed(3)} -> ${
        report.val_loss_after.toFixed(3)
      } nats/byte after ${report.steps} steps; ${seconds.toFixed(0)} s of a ${
        (budgetMs / 1000).toFixed(0)
      } s budget (${report.tokens_per_s.toFixed(0)} tok/s, ${utilizationText(report)} on ` +
        `${report.adapter})\n` +
        `checkpoint ${report.checkpoint}, loss curve ${report.plot}`,
    );
  }
}

if (import.meta.main) await runCommand(main);
