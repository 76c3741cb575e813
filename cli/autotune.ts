/**
 * `deno task autotune [--quick] [--kernels matmul] [--config F.json] [--cache F] [--json]`: tunes
 * the kernels of one training step of a config's model (default: the demo's) on this machine's
 * adapter and stores the winners in the autotune cache (`.cache/autotune.json`), which training
 * then uses. Progress goes to stderr; stdout gets per shape the default and the best time, the
 * speedup and the chosen variant (or one JSON object with `--json`). Shapes already in the cache
 * for this adapter, Deno version and kernel source are not measured again.
 */
import { Option } from "commander";
import {
  adapterIdOf,
  Autotuner,
  matmulBucket,
  matmulCandidates,
  matmulKernelName,
  matmulSourceHash,
  matmulTask,
  type MatmulUse,
  trainingMatmulShapes,
  tunedMatmulParams,
  type TuneEntry,
} from "../runtime/autotune.ts";
import type { Config } from "../runtime/config.ts";
import { createContext } from "../runtime/context.ts";
import {
  DEFAULT_TUNE_CACHE,
  denoVersion,
  loadTuneCache,
  saveTuneCache,
} from "../runtime/host/tune_cache.ts";
import { deviceMatmulLimits, matmulVariantName } from "../runtime/kernels/matmul.ts";
import { newCommand, parseArgv, runCommand, UsageError } from "./args.ts";
import { readConfig } from "./train.ts";

/** Kernel families `--kernels` accepts. */
export const TUNABLE = ["matmul"] as const;

/** Parsed flags. */
export interface AutotuneFlags {
  quick?: boolean;
  kernels: string;
  config?: string;
  cache: string;
  json?: boolean;
}

/** One tuned shape in the report. */
export interface AutotuneRow {
  kernel: string;
  trans: string;
  M: number;
  N: number;
  K: number;
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
  /** The fastest one-dispatch variant (what `matmul()` callers get without split-K), and its ms. */
  one_pass_variant: string;
  one_pass_ms: number;
}

/** The whole report (`--json`). */
export interface AutotuneReport {
  adapter: string;
  deno: string;
  cache: string;
  quick: boolean;
  measured_candidates: number;
  rows: AutotuneRow[];
  /** Matmul time of one training step (sum of count x ms): default, best, best one-pass. */
  step_ms: { default: number; best: number; one_pass: number };
}

function kernelsOf(list: string): string[] {
  const ks = list.split(",").map((k) => k.trim()).filter((k) => k);
  if (ks.length === 0) {
    throw new UsageError(`--kernels needs at least one of: ${TUNABLE.join(", ")}`);
  }
  for (const k of ks) {
    if (!(TUNABLE as readonly string[]).includes(k)) {
      throw new UsageError(
        `--kernels: "${k}" is not tunable (tunable: ${TUNABLE.join(", ")}; attention and ` +
          `reductions keep their defaults for now)`,
      );
    }
  }
  return ks;
}

/** The matmul shapes of one training step of a config. */
export function configMatmulShapes(config: Config): MatmulUse[] {
  return trainingMatmulShapes(config.model, {
    batch: config.train.batch_size,
    seq_len: config.train.seq_len,
    K: config.phd.K,
  });
}

/** Runs the tuning; progress lines go to `progress`. */
export async function autotune(
  f: AutotuneFlags,
  progress: (line: string) => void,
): Promise<AutotuneReport> {
  kernelsOf(f.kernels);
  const config = await readConfig(f.config);
  const ctx = await createContext();
  const cache = await loadTuneCache(f.cache, progress);
  const adapter = adapterIdOf(ctx.gpu), deno = denoVersion();
  const tuner = new Autotuner(cache, { adapter, deno, warmup: 1, runs: f.quick ? 3 : 5 });
  const limits = deviceMatmulLimits(ctx.gpu.device);
  const shapes = configMatmulShapes(config);
  const rows: AutotuneRow[] = [];
  for (const [i, s] of shapes.entries()) {
    const cached = tuner.lookup({
      kernel: matmulKernelName(s.trans),
      bucket: matmulBucket(s),
      sourceHash: matmulSourceHash(s.trans),
    });
    let entry: TuneEntry;
    if (cached) entry = cached;
    else {
      const candidates = matmulCandidates({ quick: f.quick });
      progress(
        `[${i + 1}/${shapes.length}] matmul ${s.trans} ${s.M}x${s.N}x${s.K} (${s.what}): ` +
          `${candidates.length} candidates`,
      );
      tuner.o.progress = (line) => progress(`  ${line}`);
      const task = matmulTask(ctx, s, { candidates });
      try {
        entry = await tuner.tune(task);
      } finally {
        task.destroy();
      }
      await saveTuneCache(cache, f.cache);
    }
    const onePass = tunedMatmulParams(cache, { adapter, deno, limits }, s);
    const onePassName = onePass ? matmulVariantName(onePass) : entry.trials[0].name;
    const onePassMs = entry.trials.find((t) => t.name === onePassName)?.ms ?? entry.default_ms;
    rows.push({
      kernel: "matmul",
      trans: s.trans,
      M: s.M,
      N: s.N,
      K: s.K,
      count: s.count,
      what: s.what,
      bucket: entry.bucket,
      measured: !cached,
      default_ms: entry.default_ms,
      best_ms: entry.best_ms,
      speedup: entry.default_ms / entry.best_ms,
      variant: entry.variant,
      one_pass_variant: onePassName,
      one_pass_ms: onePassMs,
    });
  }
  const sum = (f: (r: AutotuneRow) => number) => rows.reduce((t, r) => t + r.count * f(r), 0);
  return {
    adapter: ctx.gpu.adapterName,
    deno,
    cache: f.cache,
    quick: Boolean(f.quick),
    measured_candidates: tuner.measured,
    rows,
    step_ms: {
      default: sum((r) => r.default_ms),
      best: sum((r) => r.best_ms),
      one_pass: sum((r) => r.one_pass_ms),
    },
  };
}

/** The human-readable report. */
export function formatReport(r: AutotuneReport): string {
  const head = ["shape", "uses", "default ms", "best ms", "speedup", "variant", "one-pass"];
  const body = r.rows.map((x) => [
    `${x.trans} ${x.M}x${x.N}x${x.K}`,
    `${x.count}`,
    x.default_ms.toFixed(2),
    x.best_ms.toFixed(2),
    `${x.speedup.toFixed(2)}x`,
    x.variant,
    x.one_pass_variant === x.variant ? "same" : `${x.one_pass_variant} ${x.one_pass_ms.toFixed(2)}`,
  ]);
  const w = head.map((h, i) => Math.max(h.length, ...body.map((b) => b[i].length)));
  const line = (c: string[]) => c.map((x, i) => x.padEnd(w[i])).join("  ").trimEnd();
  const s = r.step_ms;
  const measured = r.rows.filter((x) => x.measured).length;
  return [
    `adapter: ${r.adapter} | deno ${r.deno} | cache ${r.cache}`,
    measured === 0
      ? `warm cache: nothing measured (every shape was already tuned)`
      : `tuned ${measured} of ${r.rows.length} shapes (${r.measured_candidates} candidates timed)`,
    line(head),
    ...body.map(line),
    `matmuls of one training step: default ${s.default.toFixed(1)} ms, tuned ${
      s.best.toFixed(1)
    } ms (${(s.default / s.best).toFixed(2)}x), one-pass only ${s.one_pass.toFixed(1)} ms (${
      (s.default / s.one_pass).toFixed(2)
    }x)`,
  ].join("\n");
}

if (import.meta.main) {
  await runCommand(async () => {
    const cmd = parseArgv(
      newCommand(
        "deno task autotune",
        "tune the kernels of a config's training step on this adapter; the winners go to the cache",
      )
        .option("--quick", "fewer candidates and runs (the variants that matter most)")
        .option(
          "--kernels <list>",
          `comma-separated kernels to tune (${TUNABLE.join(", ")})`,
          "matmul",
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
