/**
 * `deno task train [--config FILE.json] [--spec S] [--data F]... [--steps N] [--lr X]
 * [--batch-size B] [--seq-len L] [--K k] [--param NAME=V]... [--tokenizer T] [--tokens F]
 * [--out F] [--resume F]`: trains the PHD transformer of a config (flags override it) with any
 * spec on the Brown corpus, any text or a token file (`deno task tokenize`), with a progress bar
 * (step, loss, tokens/s, MFU, ETA), validation every `eval_every` steps (nats per token and bits
 * per byte), periodic checkpoint units (model + training state, holding the spec and the
 * tokenizer; runtime/host/checkpoint.ts) kept last-N, a final save on SIGINT/SIGTERM, a stop
 * with the last good checkpoint kept when the loss diverges, and a loss-curve SVG. `--resume F
 * [--override-config]` continues the newest complete unit under its saved config. Bad input
 * (config, output path, a model too big for the adapter) is refused before any data is loaded.
 * `runTraining` is shared with `deno task demo`.
 */
// @ts-types="npm:@types/cli-progress@3.11.6"
import cliProgress from "cli-progress";
import { resolve } from "node:path";
import process from "node:process";
import type { AttentionSpec } from "../dsl/spec.ts";
import { type Config, configSpec, embeddingTables } from "../runtime/model/config.ts";
import {
  buildCorpus,
  type Corpus,
  evalBatches,
  type MemoryCorpus,
} from "../runtime/data/batches.ts";
import { type ContextOptions, createContext } from "../runtime/gpu/context.ts";
import { gpuOptionsFromEnv } from "../runtime/host/gpu_options.ts";
import { loadBrown } from "../runtime/host/corpus.ts";
import {
  latestUnit,
  pruneSeries,
  removeSeries,
  removeStaleSaveTemps,
  saveCheckpoint,
  seriesPath,
  type TrainingCheckpoint,
} from "../runtime/host/checkpoint.ts";
import { checkWritable, writeFileAtomic } from "../runtime/host/files.ts";
import { checkModelFits } from "../runtime/model/limits.ts";
import type { KernelContext } from "../runtime/gpu/kernel.ts";
import { tunedKernels } from "../runtime/host/tune_cache.ts";
import { loadRunConfig, type RunOverrides } from "../runtime/host/config_file.ts";
import { loadTextCorpus } from "../runtime/host/token_cache.ts";
import { loadTokenCorpus } from "../runtime/host/token_file.ts";
import { resolveTokenizer } from "../runtime/host/tokenizer_file.ts";
import { lineChart } from "../viz/chart.ts";
import { ByteTokenizer, type Tokenizer, tokenizerFromMetadata } from "../runtime/data/tokenizer.ts";
import { LossGuard, measureMatmulGflops, Trainer } from "../runtime/train/trainer.ts";
import { StepPlanner } from "../runtime/train/budget.ts";
import { type Layout, LAYOUTS } from "../compiler/layout.ts";
import {
  assignments,
  newCommand,
  parseArgv,
  positiveInt,
  runCommand,
  tokenizerFlag,
  UsageError,
} from "./args.ts";

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
  /** The checkpoint to continue from (see `resolveResume`); its config must be `config`. */
  resume?: TrainingCheckpoint;
  layout?: Layout;
  /** No progress bar or log lines (stderr stays quiet). */
  quiet?: boolean;
  /** Validate before training (the demo's "before" figure). */
  evalBefore?: boolean;
  /** Stop at the next step on SIGINT or SIGTERM, save, and report `interrupted`. */
  signals?: boolean;
  /**
   * Train until this time (`performance.now()` ms) instead of to `train.steps`: the total is
   * planned from measured step times (runtime/train/budget.ts) and written to `config.train.steps`,
   * so the schedule ends at the deadline; the deadline is also a hard stop.
   */
  deadline?: number;
}

/** What a run reports. */
export interface TrainingReport {
  adapter: string;
  steps: number;
  /** Mean training loss of the last logged steps (nats per token). */
  train_loss: number;
  /** Every logged [step, mean training loss since the previous log] of this process. */
  losses: [number, number][];
  val_loss_before?: number;
  /** Validation loss in nats per token (NaN when interrupted). */
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
  /** Checkpoints written during the run (periodic ones, then the final one). */
  saves: number;
  /** The signal that stopped the run early (after a final save). */
  interrupted?: "SIGINT" | "SIGTERM";
  /** With a deadline: whether it stopped training before the planned steps. */
  budget_cut?: boolean;
  /** With a deadline: times the step plan was re-made after the first (load changed). */
  budget_replans?: number;
}

/** A device and pipeline cache (the adapter class from `PHD_ADAPTER_CLASS` when set). */
export function kernelContext(o: ContextOptions = {}): Promise<KernelContext> {
  return createContext({ ...gpuOptionsFromEnv(), ...o });
}

/** The Brown corpus as byte tokens (cleaned text cached under `.cache`). */
export async function brownCorpus(): Promise<MemoryCorpus> {
  return buildCorpus(await loadBrown({ cacheDir: CACHE_DIR }), new ByteTokenizer());
}

function log(quiet: boolean | undefined, msg: string) {
  if (!quiet) console.error(msg);
}

/** The memory this machine has, the bound of the pre-flight check (undefined when unknown). */
function hostMemory(): number | undefined {
  try {
    return Deno.systemMemoryInfo().total;
  } catch {
    return undefined;
  }
}

/**
 * Trains per `run`: checks the model against the adapter before any data is loaded, saves a
 * checkpoint unit every `train.save_every` steps or `train.save_every_seconds` (keeping the last
 * `train.keep_last`), stops a diverging run keeping the last good checkpoint, and at the end
 * writes the checkpoint, state and loss picture. Returns the report.
 */
export async function runTraining(
  run: TrainingRun,
  ctx?: KernelContext,
  corpus?: Corpus,
): Promise<{ report: TrainingReport; trainer: Trainer }> {
  const t0 = performance.now();
  const config = run.config, t = config.train, q = run.quiet;
  const spec = run.resume?.checkpoint.spec ?? run.spec;
  const tokenizer = run.resume
    ? tokenizerFromMetadata(run.resume.checkpoint.tokenizer)
    : run.tokenizer ?? new ByteTokenizer();
  ctx ??= await kernelContext();
  const K = spec?.K ?? configSpec(config.phd).K;
  checkModelFits(ctx.gpu, config.model, {
    batch: t.batch_size,
    L: t.seq_len,
    K,
    training: true,
    embedTables: embeddingTables({ K, embeddings: config.phd.embeddings }),
  }, { memoryBytes: hostMemory() });
  for (const p of await removeStaleSaveTemps(run.out)) log(q, `removed stale temp file ${p}`);
  if (!run.resume) {
    const n = await removeSeries(run.out);
    if (n > 0) log(q, `removed ${n} periodic checkpoints of an earlier run into ${run.out}`);
  }
  corpus ??= await corpusOf(config, tokenizer, q);
  const evalBatch = validationBatch(corpus, config);
  const tuned = await tunedKernels(ctx, (l) => log(q, l));
  const trainer = new Trainer(ctx, config, corpus, {
    spec,
    evalBatch,
    layout: run.layout,
    matmul: tuned.matmul,
    attention: tuned.attention,
  });
  log(q, tuned.summary());
  if (run.resume) {
    trainer.params.upload(run.resume.checkpoint.params);
    trainer.restore(run.resume.saved.state);
    log(q, `resuming from ${run.resume.path} at step ${trainer.step}`);
  }
  const tokensPerStep = t.batch_size * t.seq_len;
  log(
    q,
    `adapter: ${ctx.gpu.adapterName} | model: ${trainer.params.count} params, ` +
      `${config.model.num_hidden_layers} layers, hidden ${config.model.hidden_size} | ` +
      `${trainer.spec.name} | ${
        run.deadline === undefined ? `${t.steps} steps` : "steps planned to the deadline"
      } of ${t.batch_size}x${t.seq_len} tokens (x${trainer.spec.K} copies)`,
  );
  const peak = await measureMatmulGflops(ctx, tuned.matmul);
  const report: Partial<TrainingReport> = { adapter: ctx.gpu.adapterName, matmul_gflops: peak };
  let evalBeforeMs = 0;
  if (run.evalBefore) {
    const e0 = performance.now();
    report.val_loss_before = (await trainer.evaluate()).loss;
    evalBeforeMs = performance.now() - e0;
    log(q, `validation loss before training: ${report.val_loss_before.toFixed(4)} nats/token`);
  }
  const trainPts: [number, number][] = [], valPts: [number, number][] = [];
  // The final validation costs what the one before did (a margin for the save): its time is
  // taken off the deadline the steps are planned to.
  const planner = run.deadline === undefined ? undefined : new StepPlanner({
    deadline: run.deadline - 1.25 * evalBeforeMs,
    minSteps: trainer.step + t.warmup + 1,
  });
  // Until the first plan the steps are warm-up, whose rates do not depend on the total.
  if (planner) t.steps = Number.MAX_SAFE_INTEGER;
  const bar = q ? undefined : new cliProgress.SingleBar({
    format: "train [{bar}] {value}/{total} | loss {loss} | {tps} tok/s | MFU {mfu} | " +
      (planner ? "{left} s left" : "ETA {eta_formatted}"),
    stream: process.stderr,
    hideCursor: true,
    noTTYOutput: true,
    notTTYSchedule: 15000,
    etaBuffer: 50,
  }, cliProgress.Presets.shades_classic);
  const left = () => planner ? planner.secondsLeft(performance.now()).toFixed(0) : "";
  bar?.start(planner ? 0 : t.steps, trainer.step, { loss: "-", tps: "-", mfu: "-", left: left() });
  const tTrain = performance.now(), startStep = trainer.step;
  let lastLoss = NaN, evalMs = 0; // validation time is not training time
  const guard = new LossGuard(config.model.vocab_size);
  let lastGood = run.resume ? { path: run.resume.path, step: trainer.step } : undefined;
  let lastSave = performance.now(), saves = 0;
  const saveTo = async (path: string) => {
    await saveCheckpoint(path, {
      model: config.model,
      phd: config.phd,
      spec: trainer.spec,
      tokenizer: tokenizer.metadata(),
      context: t.seq_len,
      params: await trainer.params.download(),
    }, { config, state: await trainer.state() });
    lastSave = performance.now();
    lastGood = { path, step: trainer.step };
    saves++;
  };
  const diverged = (why: string) => {
    bar?.stop();
    const kept = lastGood
      ? `last good checkpoint kept: ${lastGood.path} (step ${lastGood.step})`
      : "no checkpoint was written";
    return new Error(
      `training diverged at step ${trainer.step} (${why}): lower train.lr (now ${t.lr}); ${kept}`,
    );
  };
  // Checks the loss of the steps since the last check and saves; a non-finite weight is caught
  // by the encoder, so a diverged state is never written.
  const guardedSave = async (path: string) => {
    const { loss, steps } = await trainer.takeLoss();
    const why = steps > 0 ? guard.check(loss) : undefined;
    if (why) throw diverged(why);
    if (steps > 0) lastLoss = loss;
    try {
      await saveTo(path);
    } catch (e) {
      if (e instanceof RangeError && /non-finite|holds/.test(e.message)) {
        throw diverged(e.message);
      }
      throw e;
    }
  };

  let stop: "SIGINT" | "SIGTERM" | undefined, cut = false;
  const listeners = run.signals
    ? (["SIGINT", "SIGTERM"] as const).map((sig) => {
      const h = () => stop = sig;
      Deno.addSignalListener(sig, h);
      return () => Deno.removeSignalListener(sig, h);
    })
    : [];
  try {
    while (trainer.step < t.steps) {
      trainer.trainStep();
      const s = trainer.step;
      // Signals are delivered between event-loop turns; one turn per step costs microseconds.
      if (run.signals) await new Promise((r) => setTimeout(r, 0));
      if (stop) break;
      if (planner && s === startStep + 1) {
        // The first step carries the pipeline compilation: step times are measured from here.
        await ctx.gpu.device.queue.onSubmittedWorkDone();
        planner.observe(s, performance.now());
      }
      if (s % t.log_every === 0 || s === t.steps) {
        lastLoss = (await trainer.takeLoss()).loss;
        const why = guard.check(lastLoss);
        if (why) throw diverged(why);
        trainPts.push([s, lastLoss]);
        if (planner) {
          const now = performance.now();
          t.steps = planner.observe(s, now) ?? t.steps;
          if (planner.steps !== undefined) bar?.setTotal(t.steps);
          if (planner.expired(now) && s < t.steps) {
            cut = true;
            break;
          }
        }
        const sec = (performance.now() - tTrain - evalMs) / 1000, done = s - startStep;
        const tps = done * tokensPerStep / sec;
        const mfu = done * trainer.flopsPerStep / sec / (peak * 1e9);
        bar?.update(s, {
          loss: lastLoss.toFixed(3),
          tps: tps.toFixed(0),
          mfu: `${(100 * mfu).toFixed(0)}%`,
          left: left(),
        });
      }
      const due = (t.save_every > 0 && s % t.save_every === 0) ||
        (t.save_every_seconds > 0 && performance.now() - lastSave >= t.save_every_seconds * 1000);
      if (due && s < t.steps) {
        await guardedSave(seriesPath(run.out, s));
        await pruneSeries(run.out, t.keep_last);
      }
      if (t.eval_every > 0 && s % t.eval_every === 0 && s < t.steps) {
        const e0 = performance.now();
        const v = (await trainer.evaluate()).loss;
        evalMs += performance.now() - e0;
        valPts.push([s, v]);
        bar?.stop();
        log(q, `step ${s}: validation loss ${v.toFixed(4)}`);
        bar?.start(t.steps, s, { loss: lastLoss.toFixed(3), tps: "-", mfu: "-", left: left() });
      }
    }
  } finally {
    for (const remove of listeners) remove();
  }
  await ctx.gpu.device.queue.onSubmittedWorkDone();
  bar?.stop();
  // What was trained is what the checkpoint's config says (a resume continues from there).
  if (planner) t.steps = trainer.step;
  const trainSec = (performance.now() - tTrain - evalMs) / 1000;
  const done = trainer.step - startStep;
  const plot = run.out.replace(/(\.safetensors)?$/, ".loss.svg");
  const common = {
    ...report,
    steps: trainer.step,
    losses: trainPts,
    train_seconds: trainSec,
    tokens_per_s: done > 0 ? done * tokensPerStep / trainSec : 0,
    mfu: done > 0 ? done * trainer.flopsPerStep / trainSec / (peak * 1e9) : 0,
    checkpoint: run.out,
    plot,
    spec: trainer.spec.name,
    tokenizer: tokenizer.name,
    ...(planner ? { budget_cut: cut, budget_replans: planner.replans } : {}),
  };
  if (stop) {
    await guardedSave(run.out);
    log(q, `${stop} at step ${trainer.step}: wrote ${run.out} (+ .state.safetensors)`);
    return {
      trainer,
      report: {
        ...common,
        train_loss: lastLoss,
        val_loss_after: NaN,
        val_bits_per_byte: NaN,
        seconds: (performance.now() - t0) / 1000,
        saves,
        interrupted: stop,
      } as TrainingReport,
    };
  }
  const val = (await trainer.evaluate()).loss;
  valPts.push([trainer.step, val]);
  const bpb = bitsPerByte(val, tokenizer, corpus, { ...config.train, batch_size: evalBatch });
  log(
    q,
    `validation loss after ${trainer.step} steps: ${val.toFixed(4)} nats/token ` +
      `(${bpb.toFixed(4)} bits/byte, ${tokenizer.name})`,
  );
  await guardedSave(run.out);
  await writeFileAtomic(
    plot,
    lineChart([{ name: "train", points: trainPts }, { name: "validation", points: valPts }], {
      title: `${trainer.spec.name}: loss (nats per ${tokenizer.name} token)`,
      xLabel: "step",
      yLabel: "loss",
    }),
  );
  log(q, `wrote ${run.out} (+ .state.safetensors) and ${plot}`);
  return {
    trainer,
    report: {
      ...common,
      train_loss: lastLoss,
      val_loss_after: val,
      val_bits_per_byte: bpb,
      seconds: (performance.now() - t0) / 1000,
      saves,
    } as TrainingReport,
  };
}

/** `a.b` paths and values of the fields of two configs that differ. */
function configDiff(a: Config, b: Config): { path: string; a: unknown; b: unknown }[] {
  const out: { path: string; a: unknown; b: unknown }[] = [];
  for (const section of Object.keys(a) as (keyof Config)[]) {
    const x = a[section] as unknown as Record<string, unknown>;
    const y = (b[section] ?? {}) as unknown as Record<string, unknown>;
    for (const k of new Set([...Object.keys(x), ...Object.keys(y)])) {
      if (JSON.stringify(x[k]) !== JSON.stringify(y[k])) {
        out.push({ path: `${section}.${k}`, a: x[k], b: y[k] });
      }
    }
  }
  return out;
}

/**
 * The checkpoint and config a `--resume` continues with: the newest complete unit of `path` (or
 * of its periodic series), under its saved config. `asked` is the config the flags describe
 * (the saved one with any `--config`/`--steps` applied); a difference is refused unless
 * `override`, and model or phd differences always are. One line per refusal.
 */
export async function resolveResume(
  path: string,
  asked: Config | undefined,
  o: { override?: boolean; warn?: (line: string) => void } = {},
): Promise<{ unit: TrainingCheckpoint; config: Config }> {
  const unit = await latestUnit(path);
  for (const s of unit.skipped) o.warn?.(`warning: skipped ${s}`);
  const saved = unit.saved.config, step = unit.saved.state.step;
  const diff = asked ? configDiff(saved, asked) : [];
  const shape = diff.filter((d) => !d.path.startsWith("train."));
  if (shape.length > 0) {
    throw new UsageError(
      `--resume ${unit.path}: the checkpoint's ${shape[0].path} is ${
        JSON.stringify(shape[0].a)
      }, the config asks ${JSON.stringify(shape[0].b)}: a checkpoint continues only its own ` +
        `model (drop --config, or train a new run)`,
    );
  }
  if (diff.length > 0 && !o.override) {
    const list = diff.slice(0, 3).map((d) => `${d.path} ${JSON.stringify(d.b)} (saved ${d.a})`);
    throw new UsageError(
      `--resume ${unit.path}: the command changes ${list.join(", ")}${
        diff.length > 3 ? ` and ${diff.length - 3} more` : ""
      }: drop --config/--steps to continue the same run exactly, or pass --override-config`,
    );
  }
  const config = diff.length > 0 ? asked! : saved;
  if (config.train.steps <= step) {
    throw new UsageError(
      `checkpoint "${unit.path}" is already at step ${step} of ${config.train.steps}: ` +
        `to train further pass --steps N (N > ${step}) with --override-config`,
    );
  }
  return { unit, config };
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
 * The corpus of a config: a token file (`data.tokens`, refused when made with another tokenizer
 * than `tok`), Brown (bytes) when `data.train` is empty, else the text files through the token
 * cache. Checks that both splits are long enough before saying what was loaded.
 */
async function corpusOf(config: Config, tok: Tokenizer, quiet?: boolean): Promise<Corpus> {
  const d = config.data;
  let corpus: Corpus;
  if (d.tokens !== undefined) {
    corpus = await loadTokenCorpus(d.tokens, { tokenizer: tok.metadata() });
    checkSizes(corpus, config);
    log(
      quiet,
      `data: ${d.tokens}: ${corpus.train.length} train and ${corpus.val.length} validation ids ` +
        `(${tok.name})`,
    );
  } else if (d.train === "") {
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
    .option(
      "--tokens <file>",
      "a token file of deno task tokenize, in place of --data (data.tokens)",
    )
    .option("--out <file>", "checkpoint to write", "out/model.safetensors")
    .option(
      "--resume <file>",
      "checkpoint to continue (the newest complete one of it and its .step-N series)",
    )
    .option("--override-config", "with --resume: continue under the changed --config/flags")
    .option("--layout <layout>", `attention storage layout: ${LAYOUTS.join(" | ")}`, "grouped")
    .option("--json", "print a JSON report on stdout")
    .option("--quiet", "no progress output")
    .addHelpText(
      "after",
      "\nFlags override the config file. A trained BPE (bpe:N) is written beside the checkpoint" +
        "\nas NAME.tokenizer.json (for --out NAME.safetensors) and embedded in it." +
        "\nCheckpoints: every train.save_every steps (or train.save_every_seconds) a unit of model +" +
        "\n.state.safetensors goes to <out stem>.step-NNNNNNNN.safetensors (the last train.keep_last" +
        "\nkept), and at the end (or on SIGINT/SIGTERM, exit 130/143) to <out>. --resume takes the" +
        "\nsaved config, step and schedule: a resumed run reproduces the uninterrupted one bit for" +
        "\nbit (same batches, same moments, same learning rates). A NaN or exploding loss stops the" +
        "\nrun with the last good checkpoint kept.",
    );
  const o = parseArgv(cmd).opts();
  if (!LAYOUTS.includes(o.layout)) {
    throw new UsageError(`--layout must be one of ${LAYOUTS.join(", ")}, got "${o.layout}"`);
  }
  if (o.overrideConfig && !o.resume) throw new UsageError("--override-config needs --resume");
  for (const [flag, input] of [["--tokens", o.tokens], ["--config", o.config]]) {
    if (input && resolve(input) === resolve(o.out)) {
      throw new UsageError(`--out ${o.out} is the ${flag} input: write the checkpoint elsewhere`);
    }
  }
  await checkWritable(o.out, "checkpoint");
  const over: RunOverrides = {
    spec: o.spec,
    K: o.K,
    params: o.param,
    steps: o.steps,
    lr: o.lr,
    batch_size: o.batchSize,
    seq_len: o.seqLen,
    data: o.data,
    tokenizer: o.tokenizer,
    tokens: o.tokens,
  };
  let run: Omit<Parameters<typeof runTraining>[0], "out">;
  if (o.resume) {
    // The saved config, unless --config or flags ask for another (then refused unless overridden).
    const fixed = (["spec", "K", "params", "data", "tokenizer", "tokens"] as const).filter((k) =>
      over[k] !== undefined
    );
    if (fixed.length > 0 && !o.config) {
      throw new UsageError(
        `--resume continues its checkpoint's spec, data and tokenizer: drop --${
          fixed[0] === "params" ? "param" : fixed[0]
        } (or give --config with --override-config)`,
      );
    }
    let asked: Config | undefined;
    if (o.config) asked = (await loadRunConfig(o.config, over)).config;
    else if (o.steps || o.lr || o.batchSize || o.seqLen) {
      const saved = (await latestUnit(o.resume)).saved.config;
      asked = structuredClone(saved);
      if (o.steps) asked.train.steps = o.steps;
      if (o.lr) asked.train.lr = o.lr;
      if (o.batchSize) asked.train.batch_size = o.batchSize;
      if (o.seqLen) asked.train.seq_len = o.seqLen;
    }
    const r = await resolveResume(o.resume, asked, {
      override: o.overrideConfig,
      warn: (l) => log(o.quiet, l),
    });
    run = { config: r.config, resume: r.unit };
  } else {
    const { config, spec } = await loadRunConfig(o.config, over);
    const tokenizer = config.data.tokens !== undefined
      ? (await loadTokenCorpus(config.data.tokens)).tokenizer
      : await resolveTokenizer(config.data.tokenizer, {
        train: config.data.train,
        field: config.data.field,
        out: o.out,
      });
    config.model.vocab_size = tokenizer.vocabSize;
    run = { config, spec, tokenizer };
  }
  const { report } = await runTraining({
    ...run,
    out: o.out,
    layout: o.layout,
    quiet: o.quiet,
    signals: true,
  });
  if (o.json) console.log(JSON.stringify(report));
  if (report.interrupted) {
    console.error(
      `error: interrupted by ${report.interrupted} at step ${report.steps}: saved ${report.checkpoint}; ` +
        `continue with --resume ${report.checkpoint}`,
    );
    Deno.exit(report.interrupted === "SIGINT" ? 130 : 143);
  }
  if (!o.json) {
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
