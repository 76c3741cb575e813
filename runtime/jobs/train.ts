/**
 * A whole training run, what `deno task train` and `demo` call: checks the model against the
 * adapter before any data is loaded, trains with the tuned kernels, validates every `eval_every`
 * steps (nats per token and bits per byte), saves checkpoint units (model + training state,
 * holding the spec and the tokenizer; runtime/host/checkpoint.ts) every `save_every` steps or
 * `save_every_seconds` (the last `keep_last` kept) and on SIGINT/SIGTERM, stops a diverging run
 * with the last good checkpoint kept, and ends with the checkpoint, its state and a loss-curve SVG.
 * With a deadline the step count is planned from measured step times (runtime/train/budget.ts).
 * `resolveResume` picks the unit and config a `--resume` continues; `trainCommand` is the whole of
 * `deno task train`: a config file and flags (or a checkpoint to resume) to a report.
 */
import type { AttentionSpec } from "../../dsl/spec.ts";
import type { Layout } from "../../compiler/layout.ts";
import { type Config, configSpec, embeddingTables } from "../model/config.ts";
import { type Corpus, evalBatches, validationBatchSize } from "../data/batches.ts";
import { ByteTokenizer, type Tokenizer, tokenizerFromMetadata } from "../data/tokenizer.ts";
import type { KernelContext } from "../gpu/kernel.ts";
import { type Utilization, utilization, utilizationText } from "../gpu/peak.ts";
import { checkModelFits } from "../model/limits.ts";
import { LossGuard, measureMatmulGflops, Trainer } from "../train/trainer.ts";
import { bitsPerByte } from "../train/evaluate.ts";
import { scoredPositions } from "../../compiler/analysis/leaks.ts";
import { StepPlanner } from "../train/budget.ts";
import { corpusOf } from "../host/corpus.ts";
import { hostContext } from "../host/gpu_options.ts";
import {
  latestUnit,
  pruneSeries,
  removeSeries,
  removeStaleSaveTemps,
  saveCheckpoint,
  seriesPath,
  type TrainingCheckpoint,
} from "../host/checkpoint.ts";
import { writeFileAtomic } from "../host/files.ts";
import { checkpointOutputs, guardOutputs, runInputs } from "../host/outputs.ts";
import { loadRunConfig, type RunInput, type RunOverrides } from "../host/config_file.ts";
import { resolveTokenizer } from "../host/tokenizer_file.ts";
import { loadTokenCorpus } from "../host/token_file.ts";
import type { Progress } from "../host/progress.ts";
import { tunedKernels } from "../host/tune_cache.ts";
import { lineChart } from "../../viz/chart.ts";

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
  /** Where log lines go (default: nowhere). */
  log?: (line: string) => void;
  /** A progress display for the training steps, given its format (default: none). */
  progress?: (format: string) => Progress;
  /** Validate before training (the demo's "before" figure). */
  evalBefore?: boolean;
  /**
   * Train a spec whose predictions can see their targets (a prefix-LM, an encoder), scoring only
   * the positions that cannot (compiler/analysis/leaks.ts); without it such a spec is refused.
   */
  allowLeak?: boolean;
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
export interface TrainingReport extends Utilization {
  adapter: string;
  steps: number;
  train_loss: number;
  /** Validation loss in nats per token before training (with `evalBefore`). */
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

/** What `deno task train` asks for: a config file, flags over it, or a run to resume. */
export interface TrainOptions {
  /** Config file (default: the defaults). */
  config?: string;
  /** Flags over the config file. */
  overrides: RunOverrides;
  out: string;
  /** A checkpoint to continue (the newest complete unit of it and its series). */
  resume?: string;
  /** With `resume`: continue under the changed config instead of refusing. */
  overrideConfig?: boolean;
  /** Replace existing files at the outputs that are not earlier outputs of ours. */
  force?: boolean;
  /** Train a spec whose predictions can see their targets (see `TrainingRun.allowLeak`). */
  allowLeak?: boolean;
  layout?: Layout;
  log?: (line: string) => void;
  progress?: (format: string) => Progress;
}

/**
 * `deno task train`: checks the output path, resolves the config (a fresh run's config file,
 * flags and tokenizer; or the saved config of `resume`, refusing changes unless
 * `overrideConfig`), then trains with SIGINT/SIGTERM handled.
 */
export async function trainCommand(o: TrainOptions): Promise<TrainingReport> {
  if (o.overrideConfig && !o.resume) throw new Error("--override-config needs --resume");
  const base = {
    out: o.out,
    layout: o.layout,
    log: o.log,
    progress: o.progress,
    signals: true,
    allowLeak: o.allowLeak,
  };
  if (!o.resume) {
    const { config, spec, inputs } = await loadRunConfig(o.config, o.overrides);
    const bpe = typeof config.data.tokenizer === "object";
    await guardOutputs(checkpointOutputs(o.out, "--out", { bpe }), await runInputs(inputs), o);
    const tokenizer = config.data.tokens !== undefined
      ? (await loadTokenCorpus(config.data.tokens)).tokenizer
      : await resolveTokenizer(config.data.tokenizer, {
        train: config.data.train,
        field: config.data.field,
        out: o.out,
        log: o.log,
      });
    config.model.vocab_size = tokenizer.vocabSize;
    return (await runTraining({ ...base, config, spec, tokenizer })).report;
  }
  // The saved config, unless --config or flags ask for another (then refused unless overridden).
  const over = o.overrides;
  const fixed = (["spec", "K", "params", "data", "tokenizer", "tokens"] as const).filter((k) =>
    over[k] !== undefined
  );
  if (fixed.length > 0 && !o.config) {
    throw new Error(
      `--resume continues its checkpoint's spec, data and tokenizer: drop --${
        fixed[0] === "params" ? "param" : fixed[0]
      } (or give --config with --override-config)`,
    );
  }
  let asked: Config | undefined;
  if (o.config) asked = (await loadRunConfig(o.config, over)).config;
  else if (over.steps || over.lr || over.batch_size || over.seq_len) {
    asked = structuredClone((await latestUnit(o.resume)).saved.config);
    if (over.steps) asked.train.steps = over.steps;
    if (over.lr) asked.train.lr = over.lr;
    if (over.batch_size) asked.train.batch_size = over.batch_size;
    if (over.seq_len) asked.train.seq_len = over.seq_len;
  }
  const r = await resolveResume(o.resume, asked, { override: o.overrideConfig, warn: o.log });
  const inputs: RunInput[] = o.config ? [{ path: o.config, flag: "--config" }] : [];
  const data = [r.config.data.train, r.config.data.val].flat().filter((p) => p !== "");
  for (const path of data) inputs.push({ path, flag: "data.train", pattern: true });
  if (r.config.data.tokens) inputs.push({ path: r.config.data.tokens, flag: "data.tokens" });
  await guardOutputs(checkpointOutputs(o.out, "--out"), await runInputs(inputs), o);
  return (await runTraining({ ...base, config: r.config, resume: r.unit })).report;
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
 * Trains per `run` (see the file's header) and returns the report and the trainer, whose
 * parameters hold the trained weights. `ctx` and `corpus` default to the host's.
 */
export async function runTraining(
  run: TrainingRun,
  ctx?: KernelContext,
  corpus?: Corpus,
): Promise<{ report: TrainingReport; trainer: Trainer }> {
  const job = await TrainingJob.start(run, ctx ?? await hostContext(), corpus);
  const stop = await job.steps();
  return { report: await job.finish(stop), trainer: job.trainer };
}

/** One run's state between its steps: the trainer, the saves, the logged losses, the plan. */
class TrainingJob {
  readonly t0 = performance.now();
  readonly log: (line: string) => void;
  readonly guard: LossGuard;
  readonly trainPts: [number, number][] = [];
  readonly valPts: [number, number][] = [];
  planner?: StepPlanner;
  bar?: Progress;
  lastLoss = NaN;
  lastGood?: { path: string; step: number };
  lastSave = performance.now();
  saves = 0;
  /** Validation time inside the loop (not training time). */
  evalMs = 0;
  tTrain = 0;
  startStep = 0;
  report: Partial<TrainingReport> = {};
  matmulGflops = 0;
  /** Whether the deadline stopped the steps before the planned total. */
  cut = false;

  private constructor(
    readonly run: TrainingRun,
    readonly ctx: KernelContext,
    readonly corpus: Corpus,
    readonly tokenizer: Tokenizer,
    readonly trainer: Trainer,
    readonly evalBatch: number,
  ) {
    this.log = run.log ?? (() => {});
    this.guard = new LossGuard(run.config.model.vocab_size);
    if (run.resume) this.lastGood = { path: run.resume.path, step: trainer.step };
  }

  get config(): Config {
    return this.run.config;
  }

  /** Checks the model fits, clears an earlier run's files, loads the data and builds the trainer. */
  static async start(run: TrainingRun, ctx: KernelContext, corpus?: Corpus): Promise<TrainingJob> {
    const config = run.config, t = config.train, log = run.log ?? (() => {});
    const spec = run.resume?.checkpoint.spec ?? run.spec;
    const tokenizer = run.resume
      ? tokenizerFromMetadata(run.resume.checkpoint.tokenizer)
      : run.tokenizer ?? new ByteTokenizer();
    const K = spec?.K ?? configSpec(config.phd).K;
    checkModelFits(ctx.gpu, config.model, {
      batch: t.batch_size,
      L: t.seq_len,
      K,
      training: true,
      embedTables: embeddingTables({ K, embeddings: config.phd.embeddings }),
    }, { memoryBytes: hostMemory() });
    const lossPositions = scoredPositions(spec ?? configSpec(config.phd), t.seq_len, {
      allowLeak: run.allowLeak,
      warn: log,
      what: "train",
    });
    for (const p of await removeStaleSaveTemps(run.out)) log(`removed stale temp file ${p}`);
    if (!run.resume) {
      const n = await removeSeries(run.out);
      if (n > 0) log(`removed ${n} periodic checkpoints of an earlier run into ${run.out}`);
    }
    corpus ??= await corpusOf(config, tokenizer, log);
    const evalBatch = validationBatchSize(corpus, t);
    const held = Math.floor((corpus.val.length - 1) / (evalBatch * t.seq_len));
    if (t.eval_batches > held) {
      log(
        `config.train.eval_batches ${t.eval_batches}: the validation text holds ${held} batches ` +
          `of ${evalBatch}x${t.seq_len} tokens; each validation runs those ${held}`,
      );
    }
    const tuned = await tunedKernels(ctx, log);
    const trainer = new Trainer(ctx, config, corpus, {
      spec,
      evalBatch,
      layout: run.layout,
      matmul: tuned.matmul,
      attention: tuned.attention,
      lossPositions,
    });
    log(tuned.summary());
    if (lossPositions) {
      log(`scoring ${lossPositions.length} of ${t.seq_len} positions (--allow-leak)`);
    }
    if (run.resume) {
      trainer.params.upload(run.resume.checkpoint.params);
      trainer.restore(run.resume.saved.state);
      log(`resuming from ${run.resume.path} at step ${trainer.step}`);
    }
    log(
      `adapter: ${ctx.gpu.adapterName} | model: ${trainer.params.count} params, ` +
        `${config.model.num_hidden_layers} layers, hidden ${config.model.hidden_size} | ` +
        `${trainer.spec.name} | ${
          run.deadline === undefined ? `${t.steps} steps` : "steps planned to the deadline"
        } of ${t.batch_size}x${t.seq_len} tokens (x${trainer.spec.K} copies)`,
    );
    const job = new TrainingJob(run, ctx, corpus, tokenizer, trainer, evalBatch);
    job.matmulGflops = await measureMatmulGflops(ctx, tuned.matmul);
    job.report = { adapter: ctx.gpu.adapterName };
    await job.beforeSteps();
    return job;
  }

  /** The validation before training, the step planner and the progress display. */
  async beforeSteps(): Promise<void> {
    const run = this.run, t = this.config.train;
    let evalBeforeMs = 0;
    if (run.evalBefore) {
      const e0 = performance.now();
      this.report.val_loss_before = (await this.trainer.evaluate()).loss;
      evalBeforeMs = performance.now() - e0;
      this.log(
        `validation loss before training: ${this.report.val_loss_before.toFixed(4)} nats/token`,
      );
    }
    // The final validation costs what the one before did (a margin for the save): its time is
    // taken off the deadline the steps are planned to.
    if (run.deadline !== undefined) {
      this.planner = new StepPlanner({
        deadline: run.deadline - 1.25 * evalBeforeMs,
        minSteps: this.trainer.step + t.warmup + 1,
      });
      // Until the first plan the steps are warm-up, whose rates do not depend on the total.
      t.steps = Number.MAX_SAFE_INTEGER;
    }
    this.bar = run.progress?.(
      "train [{bar}] {value}/{total} | loss {loss} | {tps} tok/s | {util} | " +
        (this.planner ? "{left} s left" : "ETA {eta_formatted}"),
    );
    this.startBar(this.planner ? 0 : t.steps, this.lastLoss);
    this.tTrain = performance.now();
    this.startStep = this.trainer.step;
  }

  startBar(total: number, loss: number): void {
    const left = this.planner ? this.planner.secondsLeft(performance.now()).toFixed(0) : "";
    this.bar?.start(total, this.trainer.step, {
      loss: Number.isNaN(loss) ? "-" : loss.toFixed(3),
      tps: "-",
      util: "-",
      left,
    });
  }

  /** Model FLOP/s of `steps` steps in `sec` seconds, as MFU and as a matmul-rate share. */
  usage(steps: number, sec: number): Utilization {
    return utilization(
      steps * this.trainer.flopsPerStep / sec,
      this.matmulGflops,
      this.ctx.gpu.peak,
    );
  }

  /** The steps: until the planned total, the deadline or a signal (returned). */
  async steps(): Promise<"SIGINT" | "SIGTERM" | undefined> {
    const run = this.run, t = this.config.train, trainer = this.trainer;
    let stop: "SIGINT" | "SIGTERM" | undefined;
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
        if (this.planner && s === this.startStep + 1) {
          // The first step carries the pipeline compilation: step times are measured from here.
          await this.ctx.gpu.device.queue.onSubmittedWorkDone();
          this.planner.observe(s, performance.now());
        }
        if ((s % t.log_every === 0 || s === t.steps) && await this.logged(s)) break;
        await this.periodic(s);
      }
    } finally {
      for (const remove of listeners) remove();
    }
    await this.ctx.gpu.device.queue.onSubmittedWorkDone();
    this.bar?.stop();
    // What was trained is what the checkpoint's config says (a resume continues from there).
    if (this.planner) t.steps = trainer.step;
    return stop;
  }

  /** Reads back and checks the loss, re-plans to the deadline; true when the budget is spent. */
  async logged(s: number): Promise<boolean> {
    const t = this.config.train, planner = this.planner;
    this.lastLoss = (await this.trainer.takeLoss()).loss;
    const why = this.guard.check(this.lastLoss);
    if (why) throw this.diverged(why);
    this.trainPts.push([s, this.lastLoss]);
    if (planner) {
      const now = performance.now();
      t.steps = planner.observe(s, now) ?? t.steps;
      if (planner.steps !== undefined) this.bar?.setTotal(t.steps);
      if (planner.expired(now) && s < t.steps) {
        this.cut = true;
        return true;
      }
    }
    const sec = (performance.now() - this.tTrain - this.evalMs) / 1000, done = s - this.startStep;
    this.bar?.update(s, {
      loss: this.lastLoss.toFixed(3),
      tps: (done * t.batch_size * t.seq_len / sec).toFixed(0),
      util: utilizationText(this.usage(done, sec), true),
      left: planner ? planner.secondsLeft(performance.now()).toFixed(0) : "",
    });
    return false;
  }

  /** A periodic save and a periodic validation, when due. */
  async periodic(s: number): Promise<void> {
    const t = this.config.train;
    const due = (t.save_every > 0 && s % t.save_every === 0) ||
      (t.save_every_seconds > 0 &&
        performance.now() - this.lastSave >= t.save_every_seconds * 1000);
    if (due && s < t.steps) {
      await this.guardedSave(seriesPath(this.run.out, s));
      await pruneSeries(this.run.out, t.keep_last);
    }
    if (t.eval_every > 0 && s % t.eval_every === 0 && s < t.steps) {
      const e0 = performance.now();
      const v = (await this.trainer.evaluate()).loss;
      this.evalMs += performance.now() - e0;
      this.valPts.push([s, v]);
      this.bar?.stop();
      this.log(`step ${s}: validation loss ${v.toFixed(4)}`);
      this.startBar(t.steps, this.lastLoss);
    }
  }

  diverged(why: string): Error {
    this.bar?.stop();
    const kept = this.lastGood
      ? `last good checkpoint kept: ${this.lastGood.path} (step ${this.lastGood.step})`
      : "no checkpoint was written";
    return new Error(
      `training diverged at step ${this.trainer.step} (${why}): lower train.lr (now ${this.config.train.lr}); ${kept}`,
    );
  }

  /**
   * Checks the loss of the steps since the last check, then saves a unit; a non-finite weight is
   * caught by the encoder, so a diverged state is never written.
   */
  async guardedSave(path: string): Promise<void> {
    const { loss, steps } = await this.trainer.takeLoss();
    const why = steps > 0 ? this.guard.check(loss) : undefined;
    if (why) throw this.diverged(why);
    if (steps > 0) this.lastLoss = loss;
    const config = this.config, trainer = this.trainer;
    try {
      await saveCheckpoint(path, {
        model: config.model,
        phd: config.phd,
        spec: trainer.spec,
        tokenizer: this.tokenizer.metadata(),
        context: config.train.seq_len,
        params: await trainer.params.download(),
      }, { config, state: await trainer.state() });
    } catch (e) {
      if (e instanceof RangeError && /non-finite|holds/.test(e.message)) {
        throw this.diverged(e.message);
      }
      throw e;
    }
    this.lastSave = performance.now();
    this.lastGood = { path, step: trainer.step };
    this.saves++;
  }

  /** The final save; after a full run also the final validation and the loss picture. */
  async finish(stop: "SIGINT" | "SIGTERM" | undefined): Promise<TrainingReport> {
    const run = this.run, trainer = this.trainer, tok = this.tokenizer;
    const trainSec = (performance.now() - this.tTrain - this.evalMs) / 1000;
    const done = trainer.step - this.startStep, t = this.config.train;
    const plot = run.out.replace(/(\.safetensors)?$/, ".loss.svg");
    const common = {
      ...this.report,
      steps: trainer.step,
      train_seconds: trainSec,
      tokens_per_s: done > 0 ? done * t.batch_size * t.seq_len / trainSec : 0,
      ...this.usage(done, done > 0 ? trainSec : 1),
      checkpoint: run.out,
      plot,
      spec: trainer.spec.name,
      tokenizer: tok.name,
      ...(this.planner ? { budget_cut: this.cut, budget_replans: this.planner.replans } : {}),
    };
    let val = NaN, bpb = NaN;
    if (stop) {
      await this.guardedSave(run.out);
      this.log(`${stop} at step ${trainer.step}: wrote ${run.out} (+ .state.safetensors)`);
    } else {
      val = (await trainer.evaluate()).loss;
      this.valPts.push([trainer.step, val]);
      bpb = bitsPerByte(val, tok, this.validationTargets());
      this.log(
        `validation loss after ${trainer.step} steps: ${val.toFixed(4)} nats/token ` +
          `(${bpb.toFixed(4)} bits/byte, ${tok.name})`,
      );
      await this.guardedSave(run.out);
      await writeFileAtomic(
        plot,
        lineChart([
          { name: "train", points: this.trainPts },
          { name: "validation", points: this.valPts },
        ], {
          title: `${trainer.spec.name}: loss (nats per ${tok.name} token)`,
          xLabel: "step",
          yLabel: "loss",
        }),
      );
      this.log(`wrote ${run.out} (+ .state.safetensors) and ${plot}`);
    }
    return {
      ...common,
      losses: this.trainPts,
      train_loss: this.lastLoss,
      val_loss_after: val,
      val_bits_per_byte: bpb,
      seconds: (performance.now() - this.t0) / 1000,
      saves: this.saves,
      ...(stop ? { interrupted: stop } : {}),
    } as TrainingReport;
  }

  /** The targets of the validation windows the loss is measured on (at the scored positions). */
  *validationTargets(): Generator<Uint32Array> {
    const t = this.config.train, w = t.seq_len + 1, scored = this.trainer.graph.positions;
    const shape = { batch: this.evalBatch, seqLen: t.seq_len };
    for (const b of evalBatches(this.corpus.val, shape, t.eval_batches)) {
      for (let r = 0; r < this.evalBatch; r++) {
        yield Uint32Array.from(scored, (p) => b[r * w + p + 1]);
      }
    }
  }
}

/** `resolveResume`'s answer: the unit to continue and the config to continue it under. */
export interface Resume {
  unit: TrainingCheckpoint;
  config: Config;
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
): Promise<Resume> {
  const unit = await latestUnit(path);
  for (const s of unit.skipped) o.warn?.(`warning: skipped ${s}`);
  const saved = unit.saved.config, step = unit.saved.state.step;
  const diff = asked ? configDiff(saved, asked) : [];
  const shape = diff.filter((d) => !d.path.startsWith("train."));
  if (shape.length > 0) {
    throw new Error(
      `--resume ${unit.path}: the checkpoint's ${shape[0].path} is ${
        JSON.stringify(shape[0].a)
      }, the config asks ${JSON.stringify(shape[0].b)}: a checkpoint continues only its own ` +
        `model (drop --config, or train a new run)`,
    );
  }
  if (diff.length > 0 && !o.override) {
    const list = diff.slice(0, 3).map((d) => `${d.path} ${JSON.stringify(d.b)} (saved ${d.a})`);
    throw new Error(
      `--resume ${unit.path}: the command changes ${list.join(", ")}${
        diff.length > 3 ? ` and ${diff.length - 3} more` : ""
      }: drop --config/--steps to continue the same run exactly, or pass --override-config`,
    );
  }
  const config = diff.length > 0 ? asked! : saved;
  if (config.train.steps <= step) {
    throw new Error(
      `checkpoint "${unit.path}" is already at step ${step} of ${config.train.steps}: ` +
        `to train further pass --steps N (N > ${step}) with --override-config`,
    );
  }
  return { unit, config };
}
