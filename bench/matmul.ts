/**
 * Matmul side by side, for the matmul shapes of one training step of the demo model (or
 * `--config`): the default variant of each adapter class (`defaultMatmul`: `cpu` is llvmpipe's,
 * `gpu` the 256-invocation staged vec4 one; "default" is this adapter's class, "other default" the
 * other one's), the tuned variant (from the autotune cache; shapes not in it are tuned first with
 * `--quick`'s candidates and saved) and `@tensorflow/tfjs-backend-webgpu`'s matMul on the same
 * data, timed in interleaved rounds (one run of each per round, in an order rotating from round to
 * round, so load from other processes and wake-up costs hit all of them alike), medians; every result is checked against float64 first. Then, unless
 * `--no-train`, whole training steps of the config with the default and the tuned (one-dispatch)
 * matmuls, interleaved the same way: tokens/s. `--no-tune` leaves shapes the cache lacks untuned
 * (their "tuned" column is this class's default): the class comparison without minutes of tuning.
 *
 *   deno task bench matmul [--json] [--rounds N] [--cache F] [--config F.json] [--no-train]
 *     [--no-tune]
 */
import * as tf from "@tensorflow/tfjs-core";
import type { WebGPUBackend } from "@tensorflow/tfjs-backend-webgpu";
import "@tensorflow/tfjs-backend-webgpu";
import { adapterIdOf, Autotuner, randomOperands } from "../runtime/tune/engine.ts";
import { median } from "../runtime/measure/stats.ts";
import { timeDispatches, timingReps } from "../runtime/measure/timing.ts";
import {
  configMatmulShapes,
  matmulCandidates,
  matmulTask,
  tunedMatmulChooser,
  tunedMatmulParams,
} from "../runtime/tune/matmul.ts";
import { createContext } from "../runtime/gpu/context.ts";
import { gpuOptionsFromEnv } from "../runtime/host/gpu_options.ts";
import { Rng } from "../runtime/data/rng.ts";
import { readback, storageBuffer } from "../runtime/gpu/resources.ts";
import {
  DEFAULT_TUNE_CACHE,
  denoVersion,
  loadTuneCache,
  saveTuneCache,
} from "../runtime/host/tune_cache.ts";
import { destroyDispatches, submit } from "../runtime/gpu/kernel.ts";
import { type AdapterClass, gpuLimits } from "../runtime/gpu/device.ts";
import {
  defaultMatmul,
  type MatmulBlocking,
  matmulDispatches,
  matmulVariantName,
} from "../runtime/kernels/matmul.ts";
import { matmulRef } from "../reference/kernels.ts";
import { Trainer } from "../runtime/train/trainer.ts";
import { readConfig } from "../runtime/host/config_file.ts";
import { fail, flag } from "./results.ts";
import { timeRounds } from "../runtime/measure/timing.ts";

const HELP =
  `usage: deno task bench matmul [--json] [--rounds N] [--cache F] [--config F.json] [--no-train]
       [--no-tune]

Default (this adapter class's and the other class's: cpu = llvmpipe-shaped, gpu = 256 invocations,
staged vec4 tiles) vs tuned matmul vs tfjs-backend-webgpu matMul on the training-step shapes of a
config (default: the demo model), then training tokens/s with default vs tuned matmuls.
PHD_ADAPTER_CLASS=cpu|gpu overrides the adapter's class (which default is "default"). Shapes the
cache lacks are tuned first (quick candidates) unless --no-tune (then "tuned" is the default).`;

export async function main(args: string[]) {
  if (args.includes("--help") || args.includes("-h")) {
    console.log(HELP);
    return;
  }
  const known = new Set(["--json", "--rounds", "--cache", "--config", "--no-train", "--no-tune"]);
  for (const a of args) if (a.startsWith("--") && !known.has(a)) fail(`unknown flag ${a}`);
  const json = args.includes("--json"), train = !args.includes("--no-train");
  const rounds = Number(flag(args, "--rounds") ?? 7);
  if (!Number.isInteger(rounds) || rounds < 1) fail("--rounds needs a positive integer");
  const cachePath = flag(args, "--cache") ?? DEFAULT_TUNE_CACHE;
  const config = await readConfig(flag(args, "--config")).catch((e) => fail(e.message));
  const log = (s: string) => console.error(s);

  const ctx = await createContext(gpuOptionsFromEnv()), dev = ctx.gpu.device;
  const adapter = adapterIdOf(ctx.gpu), deno = denoVersion();
  const limits = gpuLimits(ctx.gpu);
  const own = ctx.gpu.adapterClass, other: AdapterClass = own === "cpu" ? "gpu" : "cpu";
  const cache = await loadTuneCache(cachePath, log);
  const shapes = configMatmulShapes(ctx, config);

  // Shapes the cache lacks are tuned first (quick candidates), so "tuned" always means tuned.
  const tuner = new Autotuner(cache, { adapter, deno, warmup: 1, runs: 3 });
  for (const s of args.includes("--no-tune") ? [] : shapes) {
    if (tunedMatmulParams(cache, { adapter, deno, limits, allowSplitK: true }, s)) continue;
    log(`tuning matmul ${s.trans} ${s.M}x${s.N}x${s.inner} (not in ${cachePath})`);
    const task = matmulTask(ctx, s, {
      candidates: matmulCandidates({ adapterClass: own, quick: true, shape: s, limits }),
    });
    try {
      await tuner.tune(task);
    } finally {
      task.destroy();
    }
    await saveTuneCache(cache, cachePath);
  }

  await tf.setBackend("webgpu");
  await tf.ready();
  const backend = tf.backend() as WebGPUBackend;
  const tfName = `tfjs-backend-webgpu ${tf.version_core}`;

  const rows: Row[] = [];
  for (const s of shapes) {
    const { trans, M, N, inner } = s, flops = 2 * M * N * inner;
    const rand = randomOperands(7);
    const a = rand(M * inner), b = rand(N * inner);
    const ref = matmulRef(a, b, s);
    const ab = storageBuffer(dev, a),
      bb = storageBuffer(dev, b),
      cb = storageBuffer(dev, M * N * 4);
    const byDefault = defaultMatmul(own, s, limits), otherDefault = defaultMatmul(other, s, limits);
    const tuned = tunedMatmulParams(cache, { adapter, deno, limits, allowSplitK: true }, s) ??
      byDefault;
    const prep = (params: MatmulBlocking) =>
      matmulDispatches(ctx, { a: ab, b: bb, c: cb, M, N, inner, trans, params });
    const ours = { default: prep(byDefault), other: prep(otherDefault), tuned: prep(tuned) };
    const err: Record<string, number> = {};
    for (const [name, ds] of Object.entries(ours)) {
      submit(ctx, ds);
      const got = new Float32Array(await readback(dev, cb, M * N * 4));
      err[name] = maxErr(got, ref);
    }
    // tfjs on the same data: C = A'·B' through matMul's transpose flags.
    const ta = tf.tensor2d(a, trans === "tn" ? [inner, M] : [M, inner]);
    const tb = tf.tensor2d(b, trans === "nt" ? [N, inner] : [inner, N]);
    const tfRun = () => tf.matMul(ta, tb, trans === "tn", trans === "nt");
    {
      const c = tfRun(); // first call compiles its program
      err.tfjs = maxErr(await c.data() as Float32Array, ref);
      c.dispose();
    }
    const reps = timingReps(flops);
    const tfTime = async (check = false) => {
      const t0 = performance.now();
      const outs = Array.from({ length: reps }, tfRun);
      // tfjs keeps its compute pass open between ops: end it, or the submit drops the work.
      backend.endComputePassEncoder();
      backend.submitQueue();
      await backend.device.queue.onSubmittedWorkDone();
      const ms = (performance.now() - t0) / reps;
      // The timed work really ran: the last output (a fresh buffer) holds the product.
      if (check) err.tfjs_timed = maxErr(await outs[reps - 1].data() as Float32Array, ref);
      for (const o of outs) o.dispose();
      return ms;
    };
    // Each round times every side once, starting one side later than the round before: the
    // first timing after tfjs's host-side work runs measurably slower on llvmpipe (its threads
    // wake up), so no side may always come first. Round 0 warms up; the first tfjs timing checks
    // that its work really ran.
    let tfFirst = true;
    const [dft, oth, tun, tfj] = await timeRounds([
      () => timeDispatches(ctx, ours.default, reps),
      () => timeDispatches(ctx, ours.other, reps),
      () => timeDispatches(ctx, ours.tuned, reps),
      () => {
        const check = tfFirst;
        tfFirst = false;
        return tfTime(check);
      },
    ], { rounds, rotate: true });
    const times = { default: dft, other: oth, tuned: tun, tfjs: tfj };
    const ms = {
      default: median(times.default),
      other: median(times.other),
      tuned: median(times.tuned),
      tfjs: median(times.tfjs),
    };
    const row: Row = {
      shape: `${trans} ${M}x${N}x${inner}`,
      what: s.what,
      uses: s.count,
      variant: matmulVariantName(tuned),
      default_variant: matmulVariantName(byDefault),
      other_default_variant: matmulVariantName(otherDefault),
      default_ms: +ms.default.toFixed(3),
      other_default_ms: +ms.other.toFixed(3),
      tuned_ms: +ms.tuned.toFixed(3),
      tfjs_ms: +ms.tfjs.toFixed(3),
      default_gflops: +(flops / ms.default / 1e6).toFixed(3),
      other_default_gflops: +(flops / ms.other / 1e6).toFixed(3),
      tuned_gflops: +(flops / ms.tuned / 1e6).toFixed(3),
      tfjs_gflops: +(flops / ms.tfjs / 1e6).toFixed(3),
      other_vs_default: +(ms.default / ms.other).toFixed(2),
      tuned_vs_default: +(ms.default / ms.tuned).toFixed(2),
      tuned_vs_tfjs: +(ms.tfjs / ms.tuned).toFixed(2),
      max_abs_err: Object.fromEntries(
        Object.entries(err).map(([k, v]) => [k, +v.toExponential(2)]),
      ),
    };
    rows.push(row);
    log(JSON.stringify(row));
    destroyDispatches([...ours.default, ...ours.other, ...ours.tuned]);
    for (const x of [ab, bb, cb]) x.destroy();
    ta.dispose();
    tb.dispose();
  }
  const total = (k: "default_ms" | "other_default_ms" | "tuned_ms" | "tfjs_ms") =>
    rows.reduce((t, r) => t + r.uses * r[k], 0);
  const step = {
    default_ms: +total("default_ms").toFixed(1),
    other_default_ms: +total("other_default_ms").toFixed(1),
    other_vs_default: +(total("default_ms") / total("other_default_ms")).toFixed(2),
    tuned_ms: +total("tuned_ms").toFixed(1),
    tfjs_ms: +total("tfjs_ms").toFixed(1),
    tuned_vs_default: +(total("default_ms") / total("tuned_ms")).toFixed(2),
    tuned_vs_tfjs: +(total("tfjs_ms") / total("tuned_ms")).toFixed(2),
  };

  let training;
  if (train) {
    training = await trainSteps(ctx, config, cache, { adapter, deno, limits }, rounds, log);
  }

  const result = {
    adapter: ctx.gpu.adapterName,
    adapter_class: own,
    other_class: other,
    tfjs: tfName,
    deno,
    rounds,
    rows,
    step_matmuls: step,
    training,
  };
  if (json) {
    console.log(JSON.stringify(result));
    return;
  }
  const head = [
    "shape",
    "uses",
    "default ms",
    `${other} default ms`,
    "tuned ms",
    "tfjs ms",
    "default GF/s",
    "tuned GF/s",
    "tfjs GF/s",
    "tuned/default",
    "tuned/tfjs",
    "default variant",
    `${other} default variant`,
    "tuned variant",
  ];
  const body = rows.map((r) => [
    r.shape,
    `${r.uses}`,
    r.default_ms.toFixed(2),
    r.other_default_ms.toFixed(2),
    r.tuned_ms.toFixed(2),
    r.tfjs_ms.toFixed(2),
    r.default_gflops.toFixed(2),
    r.tuned_gflops.toFixed(2),
    r.tfjs_gflops.toFixed(2),
    `${r.tuned_vs_default.toFixed(2)}x`,
    `${r.tuned_vs_tfjs.toFixed(2)}x`,
    r.default_variant,
    r.other_default_variant,
    r.variant,
  ]);
  console.log(
    `adapter: ${result.adapter} (${own} class) | ${tfName} | median of ${rounds} interleaved rounds`,
  );
  console.log(markdownTable(head, body));
  console.log(
    `one training step's matmuls (sum of uses x ms): default (${own}) ${step.default_ms} ms, ` +
      `${other} default ${step.other_default_ms} ms (${step.other_vs_default}x), tuned ` +
      `${step.tuned_ms} ms, tfjs ${step.tfjs_ms} ms: tuned ${step.tuned_vs_default}x default, ` +
      `${step.tuned_vs_tfjs}x tfjs`,
  );
  if (training) {
    console.log(
      `training step (${training.tokens} tokens): default ${training.default_ms} ms ` +
        `(${training.default_tokens_per_s} tok/s), tuned ${training.tuned_ms} ms ` +
        `(${training.tuned_tokens_per_s} tok/s): ${training.speedup}x`,
    );
  }
}

/** Whole training steps with default and tuned matmuls, interleaved; median ms and tokens/s. */
async function trainSteps(
  ctx: Awaited<ReturnType<typeof createContext>>,
  config: Awaited<ReturnType<typeof readConfig>>,
  cache: Awaited<ReturnType<typeof loadTuneCache>>,
  o: Parameters<typeof tunedMatmulChooser>[1],
  rounds: number,
  log: (s: string) => void,
) {
  const r = new Rng(1);
  const stream = Uint32Array.from({ length: 1 << 16 }, () => r.int(256));
  const corpus = { train: stream, val: stream };
  const trainers = {
    default: new Trainer(ctx, config, corpus),
    tuned: new Trainer(ctx, config, corpus, { matmul: tunedMatmulChooser(cache, o) }),
  };
  const [dSamples, tSamples] = await timeRounds(
    Object.values(trainers).map((t) => () => {
      t.trainStep();
      return ctx.gpu.device.queue.onSubmittedWorkDone();
    }),
    { rounds: Math.max(3, Math.ceil(rounds / 2)) },
  );
  const times = { default: dSamples, tuned: tSamples };
  for (const t of Object.values(trainers)) t.destroy();
  const tokens = config.train.batch_size * config.train.seq_len;
  const d = median(times.default), t = median(times.tuned);
  const out = {
    tokens,
    default_ms: Math.round(d),
    tuned_ms: Math.round(t),
    default_tokens_per_s: Math.round(tokens / (d / 1000)),
    tuned_tokens_per_s: Math.round(tokens / (t / 1000)),
    speedup: +(d / t).toFixed(2),
  };
  log(JSON.stringify({ training: out }));
  return out;
}

/** One shape's side-by-side figures. */
interface Row {
  shape: string;
  what: string;
  uses: number;
  variant: string;
  /** This adapter class's default and the other class's (`defaultMatmul`). */
  default_variant: string;
  other_default_variant: string;
  default_ms: number;
  other_default_ms: number;
  tuned_ms: number;
  tfjs_ms: number;
  default_gflops: number;
  other_default_gflops: number;
  tuned_gflops: number;
  tfjs_gflops: number;
  /** Speed of the other class's default relative to this class's (below 1: slower). */
  other_vs_default: number;
  tuned_vs_default: number;
  tuned_vs_tfjs: number;
  max_abs_err: Record<string, number>;
}

/** Largest absolute difference (Infinity where a value is NaN). */
export function maxErr(got: ArrayLike<number>, ref: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < ref.length; i++) {
    const e = Math.abs(got[i] - ref[i]);
    m = Number.isNaN(e) ? Infinity : Math.max(m, e);
  }
  return m;
}

function markdownTable(head: string[], body: string[][]): string {
  const w = head.map((h, i) => Math.max(h.length, ...body.map((b) => b[i].length)));
  const line = (c: string[]) => `| ${c.map((x, i) => x.padEnd(w[i])).join(" | ")} |`;
  return [line(head), `| ${w.map((n) => "-".repeat(n)).join(" | ")} |`, ...body.map(line)].join(
    "\n",
  );
}
