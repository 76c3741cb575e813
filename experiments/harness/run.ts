/**
 * One run of an experiment: an arm's config at one seed, trained on the suite's budget, validated
 * at `eval_points` evenly spaced steps and at the end. What every engine shares lives here: what a
 * run records (`RunResult`), its step count from the budget and the steps where it validates and
 * logs (`planRun`), so a run means the same in both engines. `runArm` is the WebGPU engine, the
 * in-process `Trainer`; experiments/harness/torch_engine.ts is the PyTorch one. Loss is in nats
 * per token and bits per byte (the byte tokenizer: one token is one byte). Platform-neutral.
 */
import type { Config } from "../../runtime/model/config.ts";
import type { KernelContext } from "../../runtime/gpu/kernel.ts";
import type { Corpus } from "../../runtime/data/batches.ts";
import { Trainer, type TrainerOptions } from "../../runtime/train/trainer.ts";
import { bitsPerToken } from "../../runtime/train/evaluate.ts";
import { timeRuns } from "../../runtime/measure/timing.ts";
import { mean } from "../../runtime/measure/stats.ts";
import { type Budget, stepsForTokens } from "./suite.ts";
import { type Example, taskAccuracy } from "./tasks.ts";

/** What a finished run records (the results file of one arm and seed). */
export interface RunResult {
  arm: string;
  seed: number;
  spec: string;
  K: number;
  params: number;
  steps: number;
  /** Training input positions (bytes) seen. */
  tokens: number;
  /** Model training FLOPs (`Trainer.flopsPerStep` x steps). */
  flops: number;
  /** Wall time of the training steps (validation excluded). */
  train_seconds: number;
  /** Mean training loss (nats per token) of the steps up to each logged step: [step, loss]. */
  losses: [number, number][];
  /** Validation loss (nats per token) after `tokens` training tokens, at each point. */
  curve: [number, number][];
  val_loss: number;
  val_bpb: number;
  /** Greedy exact-match accuracy on the task's validation lines (task suites). */
  accuracy?: number;
}

/** How a run is split into steps: how many, where it validates and where it logs its loss. */
export interface RunPlan {
  steps: number;
  /** Steps before the last after which the run validates (the last always does). */
  evalSteps: number[];
  /** Steps between logged training losses (the last step is always logged). */
  logEvery: number;
}

/**
 * The steps of a run: the budget's (tokens at the config's batch shape times the arm's factor,
 * FLOPs over `flopsPerStep`, or seconds over `secondsPerStep`), `evalPoints` evenly spaced
 * validations before the end, and about 20 logged losses (at most every `train.log_every`).
 */
export function planRun(
  c: Config,
  o: {
    budget: Budget;
    tokensFactor: number;
    evalPoints: number;
    flopsPerStep: number;
    secondsPerStep?: number;
  },
): RunPlan {
  const b = o.budget;
  let steps: number;
  if ("tokens" in b) steps = stepsForTokens(c, b.tokens * o.tokensFactor);
  else if ("flops" in b) steps = Math.max(1, Math.round(b.flops / o.flopsPerStep));
  else if (o.secondsPerStep !== undefined) {
    steps = Math.max(1, Math.floor(b.seconds / o.secondsPerStep));
  } else throw new Error("a seconds budget needs timed steps (the WebGPU engine)");
  const evalSteps = [
    ...new Set(
      Array.from(
        { length: o.evalPoints },
        (_, i) => Math.round((i + 1) * steps / (o.evalPoints + 1)),
      ),
    ),
  ].filter((s) => s > 0 && s < steps);
  return {
    steps,
    evalSteps,
    logEvery: Math.max(1, Math.min(c.train.log_every, Math.ceil(steps / 20))),
  };
}

/** One run of a suite, whatever trains it: the arm at a seed, its budget and what it reports. */
export interface RunSpec {
  arm: string;
  seed: number;
  budget: Budget;
  tokensFactor: number;
  evalPoints: number;
  /** Validation lines of a synthetic task: the run also reports its accuracy on them. */
  taskExamples?: readonly Example[];
  /** Called every few steps with (steps done, steps in all, last mean training loss). */
  progress?: (step: number, steps: number, loss: number) => void;
}

/** Options of `runArm`. */
export interface RunOptions extends TrainerOptions, RunSpec {}

/** Mean seconds of `n` training steps of a scratch trainer (the `seconds` budget's estimate). */
async function secondsPerStep(ctx: KernelContext, config: Config, corpus: Corpus, o: RunOptions) {
  const t = new Trainer(ctx, structuredClone(config), corpus, o), q = ctx.gpu.device.queue;
  try {
    // one untimed step builds the pipelines
    const ms = await timeRuns(() => {
      t.trainStep();
      return q.onSubmittedWorkDone();
    }, { rounds: 3 });
    return mean(ms) / 1000;
  } finally {
    t.destroy();
  }
}

/** Trains one arm at one seed on the budget with the WebGPU `Trainer`; returns what it reached. */
export async function runArm(
  ctx: KernelContext,
  config: Config,
  corpus: Corpus,
  o: RunOptions,
): Promise<RunResult> {
  const c = structuredClone(config), b = o.budget;
  const perSecond = "seconds" in b ? await secondsPerStep(ctx, c, corpus, o) : undefined;
  const trainer = new Trainer(ctx, c, corpus, o);
  try {
    const plan = planRun(c, {
      ...o,
      flopsPerStep: trainer.flopsPerStep,
      secondsPerStep: perSecond,
    });
    // The schedule reads train.steps at every step, so the budget may set it before the first.
    c.train.steps = plan.steps;
    const steps = plan.steps, perStep = c.train.batch_size * c.train.seq_len;
    const points = new Set(plan.evalSteps);
    const curve: [number, number][] = [], losses: [number, number][] = [];
    let trainMs = 0, loss = NaN;
    while (trainer.step < steps) {
      const t0 = performance.now();
      trainer.trainStep();
      if (trainer.step % plan.logEvery === 0 || trainer.step === steps) {
        loss = (await trainer.takeLoss()).loss;
        if (!Number.isFinite(loss)) {
          throw new Error(
            `arm "${o.arm}" seed ${o.seed} diverged at step ${trainer.step} (loss ${loss}): ` +
              `lower its train.lr (now ${c.train.lr})`,
          );
        }
        losses.push([trainer.step, loss]);
      } else if (points.has(trainer.step)) {
        await ctx.gpu.device.queue.onSubmittedWorkDone();
      }
      trainMs += performance.now() - t0;
      if (trainer.step % plan.logEvery === 0) o.progress?.(trainer.step, steps, loss);
      if (points.has(trainer.step)) {
        curve.push([trainer.step * perStep, (await trainer.evaluate()).loss]);
      }
    }
    const val = (await trainer.evaluate()).loss;
    curve.push([steps * perStep, val]);
    const accuracy = o.taskExamples
      ? await taskAccuracy(
        ctx,
        { params: trainer.params, spec: trainer.spec, layout: o.layout },
        o.taskExamples,
      )
      : undefined;
    return {
      arm: o.arm,
      seed: o.seed,
      spec: trainer.spec.name,
      K: trainer.spec.K,
      params: trainer.params.count,
      steps,
      tokens: steps * perStep,
      flops: steps * trainer.flopsPerStep,
      train_seconds: +(trainMs / 1000).toFixed(2),
      losses,
      curve,
      val_loss: val,
      val_bpb: bitsPerToken(val),
      ...(accuracy === undefined ? {} : { accuracy }),
    };
  } finally {
    trainer.destroy();
  }
}
