/**
 * `deno task train [--config FILE.json] [--spec S] [--data F]... [--steps N] [--lr X]
 * [--batch-size B] [--seq-len L] [--K k] [--param NAME=V]... [--tokenizer T] [--out F]
 * [--resume F]`: trains the PHD transformer of a config (flags override it) with any spec on the
 * Brown corpus or any text, with a progress bar (step, loss, tokens/s, MFU, ETA), validation every
 * `eval_every` steps (nats per token and bits per byte), a checkpoint holding the spec and the
 * tokenizer plus its training-state sibling, and a loss-curve SVG. `runTraining` is shared with
 * `deno task demo`.
 */
// @ts-types="npm:@types/cli-progress@3.11.6"
import cliProgress from "cli-progress";
import process from "node:process";
import type { AttentionSpec } from "../dsl/spec.ts";
import type { Config } from "../runtime/model/config.ts";
import {
  buildCorpus,
  type Corpus,
  evalBatches,
  type MemoryCorpus,
} from "../runtime/data/batches.ts";
import { createContext } from "../runtime/gpu/context.ts";
import { loadBrown } from "../runtime/host/corpus.ts";
import { loadCheckpoint, loadTrainingState, saveCheckpoint } from "../runtime/host/checkpoint.ts";
import { writeFileAtomic } from "../runtime/host/files.ts";
import type { KernelContext } from "../runtime/gpu/kernel.ts";
import { tunedKernels } from "../runtime/host/tune_cache.ts";
import { loadRunConfig, type RunOverrides } from "../runtime/host/config_file.ts";
import { loadTextCorpus } from "../runtime/host/token_cache.ts";
import { resolveTokenizer } from "../runtime/host/tokenizer_file.ts";
import { lineChart } from "../viz/chart.ts";
import { ByteTokenizer, type Tokenizer, tokenizerFromMetadata } from "../runtime/data/tokenizer.ts";
import { measureMatmulGflops, Trainer } from "../runtime/train/trainer.ts";
import { type Layout, LAYOUTS } from "../compiler/layout.ts";
import { assignments, newCommand, parseArgv, positiveInt, runCommand, UsageError } from "./args.ts";

/** Where caches of derived data (the cleaned corpus) live. */
export const CACHE_DIR = ".cache";

/** Options of one training run. */
export interface TrainingRun {
  config: Config;
  /** The spec to train (default: the preset of `config.phd`). */
  spec?: AttentionSpec;
  /** The tokenizer of the corpus (default: bytes); stored in the checkpoint. */
  tokenizer?: Tokenizer;
  /** Checkpoint to write (its `.state.safetensors` sibling and `.loss.svg` picture beside it). */
  out: string;
  /** Checkpoint to resume from (its training state must sit beside it). */
  resume?: string;
  layout?: Layout;
  /** No progress bar or log lines (stderr stays quiet). */
  quiet?: boolean;
  /** Validate before training (the demo's "before" figure). */
  evalBefore?: boolean;
}

/** What a run reports. */
export interface TrainingReport {
  adapter: string;
  steps: number;
  /** Mean training loss of the last logged steps (nats per token). */
  train_loss: number;
  val_loss_before?: number;
  /** Validation loss in nats per token. */
  val_loss_after: number;
  /** The same in bits per UTF-8 byte of the validation text (compares across tokenizers). */
  val_bits_per_byte: number;
  spec: string;
  tokenizer: string;
  seconds: number;
  train_seconds: number;
  tokens_per_s: number;
  /** Model FLOP/s over the adapter's measured matmul FLOP/s. */
  mfu: number;
  matmul_gflops: number;
  checkpoint: string;
  plot: string;
}

/** A device and pipeline cache. */
export const kernelContext = createContext;

/** The Brown corpus as byte tokens (cleaned text cached under `.cache`). */
export async function brownCorpus(): Promise<MemoryCorpus> {
  return buildCorpus(await loadBrown({ cacheDir: CACHE_DIR }), new ByteTokenizer());
}

function log(quiet: boolean | undefined, msg: string) {
  if (!quiet) console.error(msg);
}

/** Trains per `run`, writes the checkpoint, state and loss picture, and returns the report. */
export async function runTraining(
  run: TrainingRun,
  ctx?: KernelContext,
  corpus?: Corpus,
): Promise<{ report: TrainingReport; trainer: Trainer }> {
  const t0 = performance.now();
  let config = run.config, spec = run.spec, tokenizer = run.tokenizer ?? new ByteTokenizer();
  const resumed = run.resume ? await loadResume(run.resume, config) : undefined;
  if (resumed) ({ config, spec, tokenizer } = resumed);
  corpus ??= await corpusOf(config, tokenizer, run.quiet);
  const evalBatch = validationBatch(corpus, config);
  ctx ??= await kernelContext();
  const tuned = await tunedKernels(ctx, (l) => log(run.quiet, l));
  const trainer = new Trainer(ctx, config, corpus, {
    spec,
    evalBatch,
    layout: run.layout,
    matmul: tuned.matmul,
    attention: tuned.attention,
  });
  log(run.quiet, tuned.summary());
  if (resumed) {
    trainer.params.upload(resumed.params);
    trainer.restore(resumed.state);
  }
  const t = config.train, q = run.quiet;
  const tokensPerStep = t.batch_size * t.seq_len;
  log(
    q,
    `adapter: ${ctx.gpu.adapterName} | model: ${trainer.params.count} params, ` +
      `${config.model.num_hidden_layers} layers, hidden ${config.model.hidden_size} | ` +
      `${trainer.spec.name} | ${t.steps} steps of ${t.batch_size}x${t.seq_len} tokens (x${trainer.spec.K} copies)`,
  );
  const peak = await measureMatmulGflops(ctx);
  const report: Partial<TrainingReport> = { adapter: ctx.gpu.adapterName, matmul_gflops: peak };
  if (run.evalBefore) {
    report.val_loss_before = (await trainer.evaluate()).loss;
    log(q, `validation loss before training: ${report.val_loss_before.toFixed(4)} nats/token`);
  }
  const trainPts: [number, number][] = [], valPts: [number, number][] = [];
  const bar = q ? undefined : new cliProgress.SingleBar({
    format:
      "train [{bar}] {value}/{total} | loss {loss} | {tps} tok/s | MFU {mfu} | ETA {eta_formatted}",
    stream: process.stderr,
    hideCursor: true,
    noTTYOutput: true,
    notTTYSchedule: 15000,
    etaBuffer: 50,
  }, cliProgress.Presets.shades_classic);
  bar?.start(t.steps, trainer.step, { loss: "-", tps: "-", mfu: "-" });
  const tTrain = performance.now(), startStep = trainer.step;
  let lastLoss = NaN, evalMs = 0; // validation time is not training time

  while (trainer.step < t.steps) {
    trainer.trainStep();
    const s = trainer.step;
    if (s % t.log_every === 0 || s === t.steps) {
      lastLoss = (await trainer.takeLoss()).loss;
      if (!Number.isFinite(lastLoss)) {
        bar?.stop();
        throw new Error(
          `training diverged at step ${s} (loss ${lastLoss}): lower train.lr (now ${t.lr})`,
        );
      }
      trainPts.push([s, lastLoss]);
      const sec = (performance.now() - tTrain - evalMs) / 1000, done = s - startStep;
      const tps = done * tokensPerStep / sec;
      const mfu = done * trainer.flopsPerStep / sec / (peak * 1e9);
      bar?.update(s, {
        loss: lastLoss.toFixed(3),
        tps: tps.toFixed(0),
        mfu: `${(100 * mfu).toFixed(0)}%`,
      });
    }
    if (t.eval_every > 0 && s % t.eval_every === 0 && s < t.steps) {
      const e0 = performance.now();
      const v = (await trainer.evaluate()).loss;
      evalMs += performance.now() - e0;
      valPts.push([s, v]);
      bar?.stop();
      log(q, `step ${s}: validation loss ${v.toFixed(4)}`);
      bar?.start(t.steps, s, { loss: lastLoss.toFixed(3), tps: "-", mfu: "-" });
    }
  }
  await ctx.gpu.device.queue.onSubmittedWorkDone();
  bar?.stop();
  const trainSec = (performance.now() - tTrain - evalMs) / 1000;
  const done = trainer.step - startStep;
  const val = (await trainer.evaluate()).loss;
  valPts.push([trainer.step, val]);
  const bpb = bitsPerByte(val, tokenizer, corpus, { ...config.train, batch_size: evalBatch });
  log(
    q,
    `validation loss after ${trainer.step} steps: ${val.toFixed(4)} nats/token ` +
      `(${bpb.toFixed(4)} bits/byte, ${tokenizer.name})`,
  );
  await saveCheckpoint(run.out, {
    model: config.model,
    phd: config.phd,
    spec: trainer.spec,
    tokenizer: tokenizer.metadata(),
    context: t.seq_len,
    params: await trainer.params.download(),
  }, { config, state: await trainer.state() });
  const plot = run.out.replace(/(\.safetensors)?$/, ".loss.svg");
  await writeFileAtomic(
    plot,
    lineChart([{ name: "train", points: trainPts }, { name: "validation", points: valPts }], {
      title: `${trainer.spec.name}: loss (nats per ${tokenizer.name} token)`,
      xLabel: "step",
      yLabel: "loss",
    }),
  );
  log(q, `wrote ${run.out} (+ .state.safetensors) and ${plot}`);
  const tps = done > 0 ? done * tokensPerStep / trainSec : 0;
  return {
    trainer,
    report: {
      ...report,
      steps: trainer.step,
      train_loss: lastLoss,
      val_loss_after: val,
      val_bits_per_byte: bpb,
      spec: trainer.spec.name,
      tokenizer: tokenizer.name,
      seconds: (performance.now() - t0) / 1000,
      train_seconds: trainSec,
      tokens_per_s: tps,
      mfu: done > 0 ? done * trainer.flopsPerStep / trainSec / (peak * 1e9) : 0,
      checkpoint: run.out,
      plot,
    } as TrainingReport,
  };
}

async function loadResume(path: string, config: Config) {
  const ck = await loadCheckpoint(path);
  const st = await loadTrainingState(path);
  // The saved config wins, except the step count a user may raise to train further.
  const merged: Config = { ...st.config, train: { ...st.config.train, steps: config.train.steps } };
  if (merged.train.steps <= st.state.step) {
    throw new UsageError(
      `checkpoint "${path}" is already at step ${st.state.step}: pass --steps N with N > ${st.state.step}`,
    );
  }
  return {
    config: merged,
    spec: ck.spec,
    tokenizer: tokenizerFromMetadata(ck.tokenizer),
    params: ck.params,
    state: st.state,
  };
}

/**
 * Bits per UTF-8 byte of a validation loss: nats per token times the tokens over the bytes of
 * the text they decode to, over the validation windows the loss was measured on.
 */
function bitsPerByte(loss: number, tok: Tokenizer, corpus: Corpus, t: Config["train"]): number {
  const shape = { batch: t.batch_size, seqLen: t.seq_len };
  let tokens = 0, bytes = 0;
  const enc = new TextEncoder();
  for (const b of evalBatches(corpus.val, shape, t.eval_batches)) {
    for (let r = 0; r < t.batch_size; r++) {
      const targets = b.subarray(r * (t.seq_len + 1) + 1, (r + 1) * (t.seq_len + 1));
      tokens += targets.length;
      bytes += tok.name === "bytes" ? targets.length : enc.encode(tok.decode(targets)).length;
    }
  }
  return loss * tokens / (bytes * Math.LN2);
}

/**
 * The corpus of a config: Brown (bytes) when `data.train` is empty, else the text files through
 * the token cache. Checks that both splits are long enough before saying what was loaded.
 */
async function corpusOf(config: Config, tok: Tokenizer, quiet?: boolean): Promise<Corpus> {
  const d = config.data;
  let corpus: Corpus;
  if (d.train === "") {
    if (tok.name !== "bytes") {
      throw new UsageError(
        `the Brown corpus is read as bytes; a tokenizer "${tok.name}" needs data.train (--data)`,
      );
    }
    corpus = await brownCorpus();
    checkSizes(corpus, config);
  } else {
    const tc = await loadTextCorpus(d, tok, {
      cacheDir: CACHE_DIR,
      warn: (l) => console.error(l),
    });
    corpus = tc;
    checkSizes(corpus, config);
    log(
      quiet,
      `data: ${tc.files.train.length} train file(s), ${tc.train.length} ids (${tok.name})` +
        ` (${tc.built ? "tokenised into" : "from"} ${tc.caches.join(", ")}); validation ` +
        `${tc.val.length} ids${tc.files.val.length ? "" : `, the last ${d.val_fraction} of train`}`,
    );
  }
  return corpus;
}

/** Both splits must hold a batch (training) and a window (validation): one line if not. */
function checkSizes(corpus: Corpus, config: Config): void {
  const t = config.train, need = t.batch_size * t.seq_len + 1;
  if (corpus.train.length < need) {
    throw new UsageError(
      `the training text holds ${corpus.train.length} ids, fewer than one batch ` +
        `(batch_size x seq_len + 1 = ${need}): give more text or lower --batch-size / --seq-len`,
    );
  }
  validationBatch(corpus, config);
}

/**
 * Sequences per validation batch: the training batch size, or fewer when the validation text
 * is shorter than one batch (at least one window of seq_len + 1 ids is needed).
 */
function validationBatch(corpus: Corpus, config: Config): number {
  const t = config.train, windows = Math.floor((corpus.val.length - 1) / t.seq_len);
  if (windows < 1) {
    throw new UsageError(
      `the validation text holds ${corpus.val.length} ids, fewer than one window (seq_len + 1 ` +
        `= ${t.seq_len + 1}): give more text, data.val or a larger data.val_fraction`,
    );
  }
  return Math.min(t.batch_size, windows);
}

/** `--param NAME=V` values: a number, or `a,b,c` for a table. */
function paramValue(name: string, v: string): number | number[] {
  const parts = v.split(",").map((x) => x.trim());
  if (parts.some((x) => !/^\d+$/.test(x))) {
    throw new UsageError(`--param ${name} must be an integer >= 0 or a list a,b,c, got "${v}"`);
  }
  const n = parts.map(Number);
  return parts.length === 1 ? n[0] : n;
}

function tokenizerFlag(v: string): RunOverrides["tokenizer"] {
  const m = /^bpe:(\d+)$/.exec(v);
  return m ? { bpe: Number(m[1]) } : v;
}

function positiveNumber(flag: string) {
  return (v: string) => {
    const x = Number(v);
    if (v.trim() === "" || !(x > 0) || !Number.isFinite(x)) {
      throw new UsageError(`${flag} must be a number > 0, got "${v}"`);
    }
    return x;
  };
}

async function main() {
  const cmd = newCommand("train", "Train a PHD transformer with any spec on any text.")
    .option(
      "--config <file>",
      "JSON config with model, phd, train, data sections (default: the demo model)",
    )
    .option("--spec <spec>", "a preset name or a .ts file exporting an AttentionSpec (phd.spec)")
    .option(
      "--data <path>",
      "training text: a file, folder or glob of .txt/.jsonl (repeatable; data.train)",
      (v: string, prev: string[] = []) => [...prev, v],
    )
    .option("--steps <n>", "total training steps (train.steps)", positiveInt("--steps"))
    .option("--lr <x>", "peak learning rate (train.lr)", positiveNumber("--lr"))
    .option(
      "--batch-size <n>",
      "sequences per batch (train.batch_size)",
      positiveInt("--batch-size"),
    )
    .option("--seq-len <n>", "positions per sequence (train.seq_len)", positiveInt("--seq-len"))
    .option("--K <k>", "copies per position (phd.K)", positiveInt("--K"))
    .option(
      "--param <name=value>",
      "a spec parameter, or a table as a,b,c (repeatable; phd.params)",
      assignments("--param", paramValue),
    )
    .option(
      "--tokenizer <t>",
      "bytes | a tokenizer.json path | bpe:N (data.tokenizer)",
      tokenizerFlag,
    )
    .option("--out <file>", "checkpoint to write", "out/model.safetensors")
    .option("--resume <file>", "checkpoint to continue from (needs its .state.safetensors)")
    .option("--layout <layout>", `attention storage layout: ${LAYOUTS.join(" | ")}`, "grouped")
    .option("--json", "print a JSON report on stdout")
    .option("--quiet", "no progress output")
    .addHelpText(
      "after",
      "\nFlags override the config file. A resumed run reproduces the uninterrupted one (same " +
        "batches, same moments).\nA trained BPE (bpe:N) is written beside the checkpoint as " +
        "NAME.tokenizer.json (for --out NAME.safetensors) and embedded in it.",
    );
  const o = parseArgv(cmd).opts();
  if (!LAYOUTS.includes(o.layout)) {
    throw new UsageError(`--layout must be one of ${LAYOUTS.join(", ")}, got "${o.layout}"`);
  }
  const { config, spec } = await loadRunConfig(o.config, {
    spec: o.spec,
    K: o.K,
    params: o.param,
    steps: o.steps,
    lr: o.lr,
    batch_size: o.batchSize,
    seq_len: o.seqLen,
    data: o.data,
    tokenizer: o.tokenizer,
  });
  const tokenizer = o.resume ? undefined : await resolveTokenizer(config.data.tokenizer, {
    train: config.data.train,
    field: config.data.field,
    out: o.out,
  });
  if (tokenizer) config.model.vocab_size = tokenizer.vocabSize;
  const { report } = await runTraining({
    config,
    spec,
    tokenizer,
    out: o.out,
    resume: o.resume,
    layout: o.layout,
    quiet: o.quiet,
  });
  if (o.json) console.log(JSON.stringify(report));
  else {
    console.log(
      `trained ${report.spec} for ${report.steps} steps in ${report.train_seconds.toFixed(1)} s: ` +
        `val loss ${report.val_loss_after.toFixed(4)} nats/token ` +
        `(${report.val_bits_per_byte.toFixed(4)} bits/byte), ${
          report.tokens_per_s.toFixed(0)
        } tok/s, ` +
        `MFU ${(100 * report.mfu).toFixed(1)}% of ${report.matmul_gflops.toFixed(2)} GFLOP/s`,
    );
  }
}

if (import.meta.main) await runCommand(main);
