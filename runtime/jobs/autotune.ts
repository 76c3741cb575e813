/**
 * Tuning a config's training step on this adapter, what `deno task autotune` and `demo` call:
 * every matmul shape of one training step and the training attention (forward + backward) in the
 * layouts asked, each shape's winner stored in the autotune cache (`.cache/autotune.json`) as soon
 * as it is measured, which training then uses. Shapes already in the cache for this adapter, Deno
 * version and kernel source are not measured again; with a deadline, shapes go by decreasing FLOPs
 * per step and those not started in time are left to the next run.
 */
import {
  type AdapterId,
  adapterIdOf,
  Autotuner,
  type TuneCacheData,
  type TuneEntry,
  type TuneKeyParts,
  type TuneTask,
} from "../tune/engine.ts";
import {
  configMatmulShapes,
  matmulCandidates,
  matmulKeyParts,
  matmulTask,
  type MatmulUse,
  tunedMatmulParams,
} from "../tune/matmul.ts";
import {
  attentionCandidates,
  attentionKeyParts,
  attentionTask,
  configAttentionShape,
} from "../tune/attention.ts";
import { type GpuLimits, gpuLimits } from "../gpu/device.ts";
import type { AttentionShape } from "../kernels/attention.ts";
import type { KernelContext } from "../gpu/kernel.ts";
import { matmulVariantName } from "../kernels/matmul.ts";
import type { Config } from "../model/config.ts";
import { LAYOUTS } from "../../compiler/layout.ts";
import { hostContext } from "../host/gpu_options.ts";
import { guardOutputs, oursTuneCache } from "../host/outputs.ts";
import {
  DEFAULT_TUNE_CACHE,
  denoVersion,
  loadTuneCache,
  saveTuneCache,
} from "../host/tune_cache.ts";
import { readConfig } from "../host/config_file.ts";

/** Kernel families `--kernels` accepts. */
export const TUNABLE = ["matmul", "attention"] as const;

/** Parsed flags. */
export interface AutotuneFlags {
  quick?: boolean;
  kernels: string;
  /** Comma-separated layouts whose training attention is tuned. Default grouped. */
  layout?: string;
  config?: string;
  cache: string;
  json?: boolean;
  /** Replace an existing `cache` file that is not an autotune cache. */
  force?: boolean;
}

/** One tuned shape in the report. */
export interface AutotuneRow {
  kernel: "matmul" | "attention";
  /** The problem in words: `nt 2048x64x64` (M x N x inner), `grouped 16x4/2 L64 K2 d16`. */
  shape: string;
  /** Matmul rows: the form and the product's dimensions (`inner`: the reduction length). */
  trans?: string;
  M?: number;
  N?: number;
  inner?: number;
  /** Times one training step runs this shape. */
  count: number;
  what: string;
  bucket: string;
  /** Whether this run measured it (false: cache hit). */
  measured: boolean;
  default_ms: number;
  best_ms: number;
  speedup: number;
  variant: string;
  /**
   * Matmul: the fastest one-dispatch variant (what `matmul()` callers get without split-K), and
   * its ms. Attention: the variant and its ms again.
   */
  one_pass_variant: string;
  one_pass_ms: number;
}

/** The whole report (`--json`). */
export interface AutotuneReport {
  adapter: string;
  /** The adapter class whose variant space was tuned (`PHD_ADAPTER_CLASS` overrides it). */
  adapter_class: string;
  deno: string;
  cache: string;
  quick: boolean;
  measured_candidates: number;
  rows: AutotuneRow[];
  /** Shapes left to their defaults because the deadline came first (see `AutotuneRun`). */
  skipped: number;
  /** Matmul time of one training step (sum of count x ms): default, best, best one-pass. */
  step_ms: { default: number; best: number; one_pass: number };
  /** Attention time of one training step (forward + backward of every layer): default, best. */
  attention_step_ms: { default: number; best: number };
}

function listOf<T extends string>(flag: string, list: string, allowed: readonly T[]): T[] {
  const xs = list.split(",").map((k) => k.trim()).filter((k) => k);
  if (xs.length === 0) throw new Error(`${flag} needs at least one of: ${allowed.join(", ")}`);
  for (const x of xs) {
    if (!(allowed as readonly string[]).includes(x)) {
      throw new Error(
        `${flag}: "${x}" is not one of ${allowed.join(", ")}` +
          (flag === "--kernels" ? " (reductions and norms keep their defaults for now)" : ""),
      );
    }
  }
  return [...new Set(xs)] as T[];
}

/** What a program that tunes inside its own run (`deno task demo`) hands `autotune`. */
export interface AutotuneRun {
  /** The device to tune on (default: a new context). */
  ctx?: KernelContext;
  /** The config whose shapes are tuned (instead of `--config`). */
  config?: Config;
  /**
   * No new shape is started after this time (`performance.now()` ms); shapes then go by
   * decreasing FLOPs per training step, so the ones that matter most are tuned first, and the
   * next run tunes the rest (the cache keeps what was measured).
   */
  deadline?: number;
}

/** Runs the tuning; progress lines go to `progress`. */
export async function autotune(
  f: AutotuneFlags,
  progress: (line: string) => void,
  run: AutotuneRun = {},
): Promise<AutotuneReport> {
  const kernels = listOf("--kernels", f.kernels, TUNABLE);
  const layouts = listOf("--layout", f.layout ?? "grouped", LAYOUTS);
  const config = run.config ?? await readConfig(f.config);
  // Minutes of tuning must not end in an unwritable cache path, nor replace a user's file.
  const out = { path: f.cache ?? DEFAULT_TUNE_CACHE, flag: "--cache", what: "autotune cache" };
  await guardOutputs(
    [{ ...out, ours: oursTuneCache }],
    f.config ? [{ path: f.config, flag: "--config" }] : [],
    f,
  );
  const ctx = run.ctx ?? await hostContext();
  const cache = await loadTuneCache(f.cache, progress);
  const shapes = kernels.includes("matmul") ? configMatmulShapes(ctx, config) : [];
  if (run.deadline !== undefined) {
    shapes.sort((a, b) => b.count * b.M * b.N * b.inner - a.count * a.M * a.N * a.inner);
  }
  const attention = kernels.includes("attention")
    ? layouts.map((l) => configAttentionShape(config, l))
    : [];
  const t = new Tuning(ctx, f, cache, progress, shapes.length + attention.length, run.deadline);
  for (const s of shapes) await t.matmul(s);
  for (const s of attention) await t.attention(s);
  return t.report();
}

/** One tuning run: the tuner, the rows measured or found so far, the shapes skipped. */
class Tuning {
  readonly tuner: Autotuner;
  readonly adapter: AdapterId;
  readonly deno = denoVersion();
  readonly limits: GpuLimits;
  readonly rows: AutotuneRow[] = [];
  skipped = 0;
  #done = 0;

  constructor(
    readonly ctx: KernelContext,
    readonly f: AutotuneFlags,
    readonly cache: TuneCacheData,
    readonly progress: (line: string) => void,
    readonly total: number,
    readonly deadline?: number,
  ) {
    this.adapter = adapterIdOf(ctx.gpu);
    this.tuner = new Autotuner(cache, {
      adapter: this.adapter,
      deno: this.deno,
      warmup: 1,
      runs: f.quick ? 3 : 5,
    });
    this.limits = gpuLimits(ctx.gpu);
  }

  /** The cached entry of a task, else tunes it (progress lines, then saves the cache). */
  async tuneOne<P>(
    head: string,
    lookup: TuneKeyParts,
    make: () => { task: TuneTask<P>; destroy(): void; n: number },
  ): Promise<{ entry: TuneEntry; measured: boolean } | undefined> {
    const i = this.#done++;
    const cached = this.tuner.lookup(lookup);
    if (cached) return { entry: cached, measured: false };
    if (this.deadline !== undefined && performance.now() >= this.deadline) {
      this.skipped++;
      return undefined;
    }
    const { task, destroy, n } = make();
    this.progress(`[${i + 1}/${this.total}] ${head}: ${n} candidates`);
    this.tuner.o.progress = (line) => this.progress(`  ${line}`);
    let entry: TuneEntry;
    try {
      entry = await this.tuner.tune(task);
    } finally {
      destroy();
    }
    await saveTuneCache(this.cache, this.f.cache);
    return { entry, measured: true };
  }

  /** Tunes (or finds) one matmul shape of the step and adds its row. */
  async matmul(s: MatmulUse): Promise<void> {
    const { ctx, f, limits } = this, adapterClass = ctx.gpu.adapterClass;
    const tuned = await this.tuneOne(
      `matmul ${s.trans} ${s.M}x${s.N}x${s.inner} (${s.what})`,
      matmulKeyParts(s, adapterClass),
      () => {
        const task = matmulTask(ctx, s, {
          candidates: matmulCandidates({ adapterClass, quick: f.quick, shape: s, limits }),
        });
        return { task, destroy: task.destroy, n: task.candidates.length };
      },
    );
    if (!tuned) return;
    const { entry, measured } = tuned;
    const on = { adapter: this.adapter, deno: this.deno, limits };
    const onePass = tunedMatmulParams(this.cache, on, s);
    const onePassName = onePass ? matmulVariantName(onePass) : entry.trials[0].name;
    const onePassMs = entry.trials.find((t) => t.name === onePassName)?.ms ?? entry.default_ms;
    this.rows.push({
      kernel: "matmul",
      shape: `${s.trans} ${s.M}x${s.N}x${s.inner}`,
      trans: s.trans,
      M: s.M,
      N: s.N,
      inner: s.inner,
      count: s.count,
      what: s.what,
      ...entryFields(entry, measured),
      one_pass_variant: onePassName,
      one_pass_ms: onePassMs,
    });
  }

  /** Tunes (or finds) the training attention of one layout and adds its row. */
  async attention(s: AttentionShape & { count: number }): Promise<void> {
    const { ctx, f, limits } = this, adapterClass = ctx.gpu.adapterClass;
    const shape =
      `${s.layout} ${s.batch}x${s.heads}/${s.kvHeads} L${s.L} K${s.spec.K} d${s.headDim}`;
    const tuned = await this.tuneOne(
      `attention ${shape} (${s.spec.name}, forward + backward)`,
      attentionKeyParts(s, adapterClass),
      () => {
        const task = attentionTask(ctx, s, {
          candidates: attentionCandidates(s.headDim, { adapterClass, quick: f.quick, limits }),
        });
        return { task, destroy: task.destroy, n: task.candidates.length };
      },
    );
    if (!tuned) return;
    this.rows.push({
      kernel: "attention",
      shape,
      count: s.count,
      what: `${s.spec.name} forward + backward`,
      ...entryFields(tuned.entry, tuned.measured),
      one_pass_variant: tuned.entry.variant,
      one_pass_ms: tuned.entry.best_ms,
    });
  }

  report(): AutotuneReport {
    const rows = this.rows;
    const sum = (kernel: string, f: (r: AutotuneRow) => number) =>
      rows.filter((r) => r.kernel === kernel).reduce((t, r) => t + r.count * f(r), 0);
    return {
      adapter: this.ctx.gpu.adapterName,
      adapter_class: this.ctx.gpu.adapterClass,
      deno: this.deno,
      cache: this.f.cache,
      quick: Boolean(this.f.quick),
      measured_candidates: this.tuner.measured,
      rows,
      skipped: this.skipped,
      step_ms: {
        default: sum("matmul", (r) => r.default_ms),
        best: sum("matmul", (r) => r.best_ms),
        one_pass: sum("matmul", (r) => r.one_pass_ms),
      },
      attention_step_ms: {
        default: sum("attention", (r) => r.default_ms),
        best: sum("attention", (r) => r.best_ms),
      },
    };
  }
}

/** The row fields every kernel's entry gives. */
function entryFields(entry: TuneEntry, measured: boolean) {
  return {
    bucket: entry.bucket,
    measured,
    default_ms: entry.default_ms,
    best_ms: entry.best_ms,
    speedup: entry.default_ms / entry.best_ms,
    variant: entry.variant,
  };
}
