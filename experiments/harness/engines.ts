/**
 * The engines that train a suite's runs (`deno task experiment --engine webgpu|torch`): one
 * interface, so the suite runner schedules runs without knowing which trains them. `webgpu` is the
 * in-process `Trainer` (experiments/harness/run.ts `runArm`), one run at a time: llvmpipe already
 * spreads a run over every core. `torch` is python/phd_torch, one process and one BLAS thread per
 * run (experiments/harness/torch_engine.ts), so `--jobs N` runs N side by side and a run's
 * arithmetic does not depend on N. Both start a run from the same weights, draw the same batches,
 * validate on the same windows at the same steps and measure task accuracy with the same function,
 * so a suite means the same in either (tests/experiment/engines_test.ts checks the losses).
 */
import type { AttentionSpec } from "../../dsl/spec.ts";
import type { Layout } from "../../compiler/layout.ts";
import type { Config } from "../../runtime/model/config.ts";
import type { KernelContext } from "../../runtime/gpu/kernel.ts";
import type { Corpus } from "../../runtime/data/batches.ts";
import { runArm, type RunResult, type RunSpec } from "./run.ts";

/** What trained a suite's runs, as results.md names it. */
export interface EngineInfo {
  /** `webgpu` or `pytorch`. */
  name: string;
  /** Its version (Deno's, or torch's and Python's). */
  version: string;
  /** The BLAS library its matrix products run on (none for WGSL kernels). */
  blas: string;
  /** The device: the WebGPU adapter, or the CPU model and its cores. */
  device: string;
  /** Threads each run computes with, when the engine fixes them. */
  threads?: number;
  /** How attention is computed, when the engine has several ways. */
  attention?: string;
}

/** One run to train: an arm's config at one seed (steps are the engine's to plan). */
export interface EngineJob extends RunSpec {
  /** The arm's resolved config with `train.seed` set (experiments/harness/suite.ts `runConfig`). */
  config: Config;
  spec: AttentionSpec;
}

/** An engine: trains one run (`signal` stops it), and is closed once the suite is done. */
export interface Engine {
  info: EngineInfo;
  /** Runs it can train side by side. */
  maxJobs: number;
  run(job: EngineJob, signal: AbortSignal): Promise<RunResult>;
  close(): Promise<void>;
}

/** The names `--engine` takes. */
export const ENGINES = ["webgpu", "torch"] as const;
export type EngineName = (typeof ENGINES)[number];

/** The WebGPU engine: `runArm` on the suite's corpus, in this process. */
export function webgpuEngine(ctx: KernelContext, corpus: Corpus, layout: Layout): Engine {
  return {
    info: {
      name: "webgpu",
      version: `Deno ${Deno.version.deno}`,
      blas: "none (WGSL kernels)",
      device: ctx.gpu.adapterName,
    },
    maxJobs: 1,
    run: (j) => runArm(ctx, j.config, corpus, { ...j, layout }),
    close: () => Promise.resolve(),
  };
}
