/**
 * `deno task train [--config FILE.json] [--steps N] [--out F.safetensors] [--resume F]`: trains
 * the PHD transformer of a config on the Brown corpus with a progress bar (step, loss, tokens/s,
 * MFU, ETA), validation every `eval_every` steps, a checkpoint plus its training-state sibling,
 * and a loss-curve SVG. `runTraining` is shared with `deno task demo`.
 */
// @ts-types="npm:@types/cli-progress@3.11.6"
import cliProgress from "cli-progress";
import process from "node:process";
import type { Config } from "../runtime/model/config.ts";
import { buildCorpus, type Corpus } from "../runtime/data/batches.ts";
import { createContext } from "../runtime/gpu/context.ts";
import { loadBrown } from "../runtime/host/corpus.ts";
import { loadCheckpoint, loadTrainingState, saveCheckpoint } from "../runtime/host/checkpoint.ts";
import { writeFileAtomic } from "../runtime/host/files.ts";
import type { KernelContext } from "../runtime/gpu/kernel.ts";
import { tunedKernels } from "../runtime/host/tune_cache.ts";
import { readConfig } from "../runtime/host/config_file.ts";
import { lineChart } from "../viz/chart.ts";
import { ByteTokenizer } from "../runtime/data/tokenizer.ts";
import { measureMatmulGflops, Trainer } from "../runtime/train/trainer.ts";
import { type Layout, LAYOUTS } from "../compiler/layout.ts";
import { newCommand, parseArgv, positiveInt, runCommand, UsageError } from "./args.ts";

/** Where caches of derived data (the cleaned corpus) live. */
export const CACHE_DIR = ".cache";

/** Options of one training run. */
export interface TrainingRun {
  config: Config;
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
  /** Mean training loss of the last logged steps. */
  train_loss: number;
  val_loss_before?: number;
  val_loss_after: number;
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
export async function brownCorpus(): Promise<Corpus> {
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
  let config = run.config;
  const resumed = run.resume ? await loadResume(run.resume, config) : undefined;
  if (resumed) config = resumed.config;
  ctx ??= await kernelContext();
  corpus ??= await brownCorpus();
  const tuned = await tunedKernels(ctx, (l) => log(run.quiet, l));
  const trainer = new Trainer(ctx, config, corpus, {
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
    log(q, `validation loss before training: ${report.val_loss_before.toFixed(4)} nats/byte`);
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
  log(q, `validation loss after ${trainer.step} steps: ${val.toFixed(4)} nats/byte`);
  await saveCheckpoint(run.out, {
    model: config.model,
    phd: config.phd,
    tokenizer: "bytes",
    context: t.seq_len,
    params: await trainer.params.download(),
  }, { config, state: await trainer.state() });
  const plot = run.out.replace(/(\.safetensors)?$/, ".loss.svg");
  await writeFileAtomic(
    plot,
    lineChart([{ name: "train", points: trainPts }, { name: "validation", points: valPts }], {
      title: `${trainer.spec.name}: loss (nats/byte)`,
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
  return { config: merged, params: ck.params, state: st.state };
}

async function main() {
  const cmd = newCommand("train", "Train a PHD transformer on the Brown corpus (UTF-8 bytes).")
    .option(
      "--config <file>",
      "JSON config with model, phd, train sections (default: the demo model)",
    )
    .option("--steps <n>", "total training steps (overrides train.steps)", positiveInt("--steps"))
    .option("--out <file>", "checkpoint to write", "out/model.safetensors")
    .option("--resume <file>", "checkpoint to continue from (needs its .state.safetensors)")
    .option("--layout <layout>", `attention storage layout: ${LAYOUTS.join(" | ")}`, "grouped")
    .option("--json", "print a JSON report on stdout")
    .option("--quiet", "no progress output")
    .addHelpText(
      "after",
      "\nA resumed run reproduces the uninterrupted one (same batches, same moments).",
    );
  const o = parseArgv(cmd).opts();
  if (!LAYOUTS.includes(o.layout)) {
    throw new UsageError(`--layout must be one of ${LAYOUTS.join(", ")}, got "${o.layout}"`);
  }
  const config = await readConfig(o.config);
  if (o.steps) config.train.steps = o.steps;
  const { report } = await runTraining({
    config,
    out: o.out,
    resume: o.resume,
    layout: o.layout,
    quiet: o.quiet,
  });
  if (o.json) console.log(JSON.stringify(report));
  else {
    console.log(
      `trained ${report.steps} steps in ${report.train_seconds.toFixed(1)} s: ` +
        `val loss ${report.val_loss_after.toFixed(4)}, ${report.tokens_per_s.toFixed(0)} tok/s, ` +
        `MFU ${(100 * report.mfu).toFixed(1)}% of ${report.matmul_gflops.toFixed(2)} GFLOP/s`,
    );
  }
}

if (import.meta.main) await runCommand(main);
