/**
 * `deno task autotune [--quick] [--kernels matmul,attention] [--layout L] [--config F.json]
 * [--cache F] [--json]`: tunes the kernels of one training step of a config's model (default: the
 * demo's) on this machine's adapter and stores the winners in the autotune cache
 * (`.cache/autotune.json`), which training then uses: every matmul shape, and the training
 * attention (forward + backward) in the layout training uses (`--layout`, default grouped like
 * `deno task train`). Progress goes to stderr; stdout gets per shape the default and the best time,
 * the speedup and the chosen variant (or one JSON object with `--json`). Shapes already in the
 * cache for this adapter, Deno version and kernel source are not measured again.
 */
import { Option } from "commander";
import {
  adapterIdOf,
  Autotuner,
  type TuneEntry,
  type TuneKeyParts,
  type TuneTask,
} from "../runtime/tune/engine.ts";
import {
  configMatmulShapes,
  matmulCandidates,
  matmulKeyParts,
  matmulTask,
  tunedMatmulParams,
} from "../runtime/tune/matmul.ts";
import {
  attentionCandidates,
  attentionKeyParts,
  attentionTask,
  configAttentionShape,
} from "../runtime/tune/attention.ts";
import { createContext } from "../runtime/gpu/context.ts";
import { gpuOptionsFromEnv } from "../runtime/host/gpu_options.ts";
import { gpuLimits } from "../runtime/gpu/device.ts";
import { checkWritable } from "../runtime/host/files.ts";
import {
  DEFAULT_TUNE_CACHE,
  denoVersion,
  loadTuneCache,
  saveTuneCache,
} from "../runtime/host/tune_cache.ts";
import { matmulVariantName } from "../runtime/kernels/matmul.ts";
import { LAYOUTS } from "../compiler/layout.ts";
import { newCommand, parseArgv, runCommand, UsageError } from "./args.ts";
import { readConfig } from "../runtime/host/config_file.ts";
import type { Config } from "../runtime/model/config.ts";
import type { KernelContext } from "../runtime/gpu/kernel.ts";

/** Kernel families `--kernels` accepts. */
const TUNABLE = ["matmul", "attention"] as const;

/** Parsed flags. */
export interface AutotuneFlags {
  quick?: boolean;
  kernels: string;
  /** Comma-separated layouts whose training attention is tuned. Default grouped. */
  layout?: string;
  config?: string;
  cache: string;
  json?: boolean;
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
  if (xs.length === 0) throw new UsageError(`${flag} needs at least one of: ${allowed.join(", ")}`);
  for (const x of xs) {
    if (!(allowed as readonly string[]).includes(x)) {
      throw new UsageError(
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
  // Minutes of tuning must not end in an unwritable cache path.
  await checkWritable(f.cache ?? DEFAULT_TUNE_CACHE, "autotune cache");
  const ctx = run.ctx ?? await createContext(gpuOptionsFromEnv());
  const cache = await loadTuneCache(f.cache, progress);
  const adapter = adapterIdOf(ctx.gpu), deno = denoVersion();
  const tuner = new Autotuner(cache, { adapter, deno, warmup: 1, runs: f.quick ? 3 : 5 });
  const limits = gpuLimits(ctx.gpu), adapterClass = ctx.gpu.adapterClass;
  const shapes = kernels.includes("matmul") ? configMatmulShapes(ctx, config) : [];
  if (run.deadline !== undefined) {
    shapes.sort((a, b) => b.count * b.M * b.N * b.inner - a.count * a.M * a.N * a.inner);
  }
  const attention = kernels.includes("attention")
    ? layouts.map((l) => configAttentionShape(config, l))
    : [];
  const total = shapes.length + attention.length;
  const rows: AutotuneRow[] = [];
  let skipped = 0;
  /** The cached entry of a task, else tunes it (progress lines, then saves the cache). */
  const tuneOne = async <P>(
    i: number,
    head: string,
    lookup: TuneKeyParts,
    make: () => { task: TuneTask<P>; destroy(): void; n: number },
  ) => {
    const cached = tuner.lookup(lookup);
    if (cached) return { entry: cached, measured: false };
    if (run.deadline !== undefined && performance.now() >= run.deadline) {
      skipped++;
      return undefined;
    }
    const { task, destroy, n } = make();
    progress(`[${i + 1}/${total}] ${head}: ${n} candidates`);
    tuner.o.progress = (line) => progress(`  ${line}`);
    let entry: TuneEntry;
    try {
      entry = await tuner.tune(task);
    } finally {
      destroy();
    }
    await saveTuneCache(cache, f.cache);
    return { entry, measured: true };
  };
  /** The row fields every kernel's entry gives. */
  const entryFields = (entry: TuneEntry, measured: boolean) => ({
    bucket: entry.bucket,
    measured,
    default_ms: entry.default_ms,
    best_ms: entry.best_ms,
    speedup: entry.default_ms / entry.best_ms,
    variant: entry.variant,
  });
  for (const [i, s] of shapes.entries()) {
    const tuned = await tuneOne(
      i,
      `matmul ${s.trans} ${s.M}x${s.N}x${s.inner} (${s.what})`,
      matmulKeyParts(s, adapterClass),
      () => {
        const task = matmulTask(ctx, s, {
          candidates: matmulCandidates({ adapterClass, quick: f.quick, shape: s, limits }),
        });
        return { task, destroy: task.destroy, n: task.candidates.length };
      },
    );
    if (!tuned) continue;
    const { entry, measured } = tuned;
    const onePass = tunedMatmulParams(cache, { adapter, deno, limits }, s);
    const onePassName = onePass ? matmulVariantName(onePass) : entry.trials[0].name;
    const onePassMs = entry.trials.find((t) => t.name === onePassName)?.ms ?? entry.default_ms;
    rows.push({
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
  for (const [j, s] of attention.entries()) {
    const shape =
      `${s.layout} ${s.batch}x${s.heads}/${s.kvHeads} L${s.L} K${s.spec.K} d${s.headDim}`;
    const tuned = await tuneOne(
      shapes.length + j,
      `attention ${shape} (${s.spec.name}, forward + backward)`,
      attentionKeyParts(s, adapterClass),
      () => {
        const task = attentionTask(ctx, s, {
          candidates: attentionCandidates(s.headDim, { adapterClass, quick: f.quick, limits }),
        });
        return { task, destroy: task.destroy, n: task.candidates.length };
      },
    );
    if (!tuned) continue;
    const { entry, measured } = tuned;
    rows.push({
      kernel: "attention",
      shape,
      count: s.count,
      what: `${s.spec.name} forward + backward`,
      ...entryFields(entry, measured),
      one_pass_variant: entry.variant,
      one_pass_ms: entry.best_ms,
    });
  }
  const sum = (kernel: string, f: (r: AutotuneRow) => number) =>
    rows.filter((r) => r.kernel === kernel).reduce((t, r) => t + r.count * f(r), 0);
  return {
    adapter: ctx.gpu.adapterName,
    adapter_class: adapterClass,
    deno,
    cache: f.cache,
    quick: Boolean(f.quick),
    measured_candidates: tuner.measured,
    rows,
    skipped,
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

/** The human-readable report. */
function formatReport(r: AutotuneReport): string {
  const head = [
    "kernel",
    "shape",
    "uses",
    "default ms",
    "best ms",
    "speedup",
    "variant",
    "one-pass",
  ];
  const body = r.rows.map((x) => [
    x.kernel,
    x.shape,
    `${x.count}`,
    x.default_ms.toFixed(2),
    x.best_ms.toFixed(2),
    `${x.speedup.toFixed(2)}x`,
    x.variant,
    x.one_pass_variant === x.variant ? "same" : `${x.one_pass_variant} ${x.one_pass_ms.toFixed(2)}`,
  ]);
  const w = head.map((h, i) => Math.max(h.length, ...body.map((b) => b[i].length)));
  const line = (c: string[]) => c.map((x, i) => x.padEnd(w[i])).join("  ").trimEnd();
  const s = r.step_ms, a = r.attention_step_ms;
  const measured = r.rows.filter((x) => x.measured).length;
  const has = (k: string) => r.rows.some((x) => x.kernel === k);
  return [
    `adapter: ${r.adapter} (${r.adapter_class} class) | deno ${r.deno} | cache ${r.cache}`,
    measured === 0
      ? `warm cache: nothing measured (every shape was already tuned)`
      : `tuned ${measured} of ${r.rows.length} shapes (${r.measured_candidates} candidates timed)`,
    line(head),
    ...body.map(line),
    ...(has("matmul")
      ? [
        `matmuls of one training step: default ${s.default.toFixed(1)} ms, tuned ${
          s.best.toFixed(1)
        } ms (${(s.default / s.best).toFixed(2)}x), one-pass only ${s.one_pass.toFixed(1)} ms (${
          (s.default / s.one_pass).toFixed(2)
        }x)`,
      ]
      : []),
    ...(has("attention")
      ? [
        `attention of one training step (forward + backward, every layer): default ${
          a.default.toFixed(1)
        } ms, tuned ${a.best.toFixed(1)} ms (${(a.default / a.best).toFixed(2)}x)`,
      ]
      : []),
  ].join("\n");
}

if (import.meta.main) {
  await runCommand(async () => {
    const cmd = parseArgv(
      newCommand(
        "deno task autotune",
        "tune the kernels of a config's training step on this adapter; the winners go to the " +
          "cache. The variant space follows the adapter class (cpu: llvmpipe-like CPU " +
          "rasterizers, gpu: the rest); PHD_ADAPTER_CLASS=cpu|gpu overrides it",
      )
        .option("--quick", "fewer candidates and runs (the variants that matter most)")
        .option(
          "--kernels <list>",
          `comma-separated kernels to tune (${TUNABLE.join(", ")})`,
          TUNABLE.join(","),
        )
        .option(
          "--layout <list>",
          `attention layouts to tune (${LAYOUTS.join(", ")}; train's default is grouped)`,
          "grouped",
        )
        .option("--config <file>", "JSON config whose shapes are tuned (default: the demo model)")
        .addOption(
          new Option("--cache <file>", "the autotune cache file").default(DEFAULT_TUNE_CACHE),
        )
        .option("--json", "print one JSON object"),
    );
    const f = cmd.opts<AutotuneFlags>();
    const report = await autotune(f, (line) => console.error(line));
    console.log(f.json ? JSON.stringify(report) : formatReport(report));
  });
}
