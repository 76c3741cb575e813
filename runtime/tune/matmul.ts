/**
 * The matmul family of the tuner: the variant space, one tuning task per product shape, the
 * shapes of a model's training step (recorded by building its graph, never listed by hand) and the
 * runtime's chooser. `matmulKeyParts` is its part of a tuning key (runtime/tune/engine.ts
 * `tuneKey`): the form (`matmul:nt`), the shape bucket (`inner64_m2048_n64`) and a hash of every
 * variant's WGSL.
 *
 * The runtime calls, once per model build:
 *   tunedMatmulChooser(cache, { adapter: adapterIdOf(ctx.gpu), deno, limits }) -> MatmulChooser
 *   (the adapter's id carries its class, whose space the key's source hash covers)
 *   (host: `loadKernelChoosers(ctx).matmul` in runtime/host/tune_cache.ts reads
 *   .cache/autotune.json)
 * and passes it as `GraphOptions.matmul`: `(shape: {trans, M, N, inner}) => MatmulBlocking |
 * undefined`, the tuned variant of the shape's bucket, or undefined (the default) for shapes not
 * tuned. Browser-safe.
 */
import { readback, storageBuffer, upload } from "../gpu/resources.ts";
import { type AdapterClass, gpuLimits, WEBGPU_DEFAULT_LIMITS } from "../gpu/device.ts";
import { destroyDispatches, type Dispatch, type KernelContext, submit } from "../gpu/kernel.ts";
import {
  DEFAULT_MATMUL,
  defaultMatmul,
  GPU_MATMUL,
  type MatmulBlocking,
  type MatmulCall,
  type MatmulChooser,
  matmulDispatches,
  matmulKernel,
  type MatmulLimits,
  matmulLimitsProblem,
  matmulLoopProblem,
  matmulReduceKernel,
  type MatmulShape,
  matmulShapeProblem,
  type MatmulTrans,
  matmulVariantName,
} from "../kernels/matmul.ts";
import { matmulRef } from "../../reference/kernels.ts";
import { type Config, configSpec } from "../model/config.ts";
import { ModelGraph } from "../model/graph.ts";
import { ModelParams } from "../model/params.ts";
import type { Candidate, TuneCacheData, TunedOn, TuneKeyParts, TuneTask } from "./engine.ts";
import {
  randomOperands,
  shapeBucket,
  sourceHash,
  timedTrials,
  uniqueCandidates,
} from "./engine.ts";
import { timeDispatches, timingReps } from "../measure/timing.ts";

/**
 * What keys a product's tuning result (with the adapter and the Deno version): the source hash
 * covers the adapter class's space, so a result tuned over the other class's space is a miss.
 */
export function matmulKeyParts(s: MatmulShape, adapterClass: AdapterClass): TuneKeyParts {
  return {
    kernel: matmulKernelName(s.trans),
    bucket: matmulBucket(s),
    sourceHash: matmulSourceHash(s.trans, adapterClass),
  };
}

/** The tuner's kernel name of a matmul form (`matmul:nt`, ...). */
function matmulKernelName(trans: MatmulTrans): string {
  return `matmul:${trans}`;
}

/** The shape bucket of a product: M, N and inner rounded up to powers of two. */
function matmulBucket(s: MatmulShape): string {
  return shapeBucket({ m: s.M, n: s.N, inner: s.inner });
}

/** Options of `matmulCandidates`. */
export interface MatmulSpaceOptions {
  /** The adapter class whose space this is (runtime/gpu/device.ts `AdapterClass`). */
  adapterClass: AdapterClass;
  /** The variants that won so far only. Default false (the full space). */
  quick?: boolean;
  /** Include the two-dispatch split-K variants. Default true. */
  splitK?: boolean;
  /** The product being tuned: its default (`defaultMatmul`) comes first. */
  shape?: MatmulShape;
  /** The device's limits, for the default of `shape`. Default: WebGPU's. */
  limits?: MatmulLimits;
}

/**
 * The variant space of an adapter class (the same for the three forms), the class's default
 * first (for `shape` when given). `cpu`: `quick` keeps the variants that won on llvmpipe (the
 * largest register blocks, one SIMD row of invocations, vec4 loads; split-K for long reductions);
 * the full space adds smaller blocks and wider workgroups, workgroup-memory staging and the
 * in-workgroup split-K, whose compiles take up to a minute each on llvmpipe (cached by Mesa
 * afterwards). `gpu`: 64-256 invocations with tiles staged in workgroup memory and vec4 loads
 * (`GPU_MATMUL` and wider or taller tiles, split-K for long reductions); the full space adds
 * unstaged, in-workgroup split-K and larger-tile variants. `splitK: false` leaves out the
 * two-dispatch variants.
 */
export function matmulCandidates(o: MatmulSpaceOptions): Candidate<MatmulBlocking>[] {
  const sk = o.splitK !== false;
  const list = o.adapterClass === "gpu" ? gpuSpace(o, sk) : cpuSpace(o, sk);
  return uniqueCandidates(list, matmulVariantName);
}

/** The gpu class's space (see `matmulCandidates`). */
function gpuSpace(o: MatmulSpaceOptions, sk: boolean): MatmulBlocking[] {
  const v4 = 4 as const;
  const list: MatmulBlocking[] = [
    ...(o.shape ? [defaultMatmul("gpu", o.shape, o.limits)] : []),
    ...GPU_MATMUL,
    { tm: 8, tn: 8, wgx: 16, wgy: 16, vec: v4, bk: 8 },
    { tm: 4, tn: 8, wgx: 16, wgy: 8, vec: v4, bk: 16 },
    { tm: 8, tn: 4, wgx: 8, wgy: 16, vec: v4, bk: 16 },
    { tm: 2, tn: 2, wgx: 16, wgy: 16, bk: 16 },
    { tm: 4, tn: 4, wgx: 16, wgy: 16, vec: v4 },
    ...(sk ? [{ tm: 4, tn: 4, wgx: 16, wgy: 16, vec: v4, bk: 16, splitK: 4 }] : []),
  ];
  if (!o.quick) {
    list.push(
      { tm: 4, tn: 4, wgx: 16, wgy: 16 },
      { tm: 8, tn: 8, wgx: 16, wgy: 16, vec: v4, bk: 16 },
      { tm: 8, tn: 8, wgx: 8, wgy: 8, vec: v4, bk: 16 },
      { tm: 4, tn: 4, wgx: 16, wgy: 4, vec: v4, kz: 4 },
      { tm: 4, tn: 4, wgx: 64, wgy: 1, vec: v4 },
    );
    if (sk) {
      list.push(
        { tm: 4, tn: 4, wgx: 16, wgy: 16, vec: v4, bk: 16, splitK: 2 },
        { tm: 4, tn: 4, wgx: 16, wgy: 16, vec: v4, bk: 16, splitK: 8 },
      );
    }
  }
  return list;
}

/** The cpu class's space (see `matmulCandidates`): what the tuner has always searched. */
function cpuSpace(o: MatmulSpaceOptions, sk: boolean): MatmulBlocking[] {
  const list: MatmulBlocking[] = [
    DEFAULT_MATMUL,
    { tm: 8, tn: 16, wgx: 8, wgy: 1 },
    { tm: 16, tn: 8, wgx: 8, wgy: 1 },
    { tm: 16, tn: 8, wgx: 8, wgy: 1, vec: 4 },
    { tm: 16, tn: 16, wgx: 8, wgy: 1 },
    { tm: 16, tn: 16, wgx: 8, wgy: 1, vec: 4 },
    ...(sk ? [{ tm: 16, tn: 16, wgx: 8, wgy: 1, splitK: 4 }] : []),
    ...(sk ? [{ tm: 16, tn: 16, wgx: 8, wgy: 1, vec: 4 as const, splitK: 4 }] : []),
  ];
  if (!o.quick) {
    list.push(
      { tm: 4, tn: 4, wgx: 16, wgy: 16 },
      { tm: 4, tn: 4, wgx: 8, wgy: 8 },
      { tm: 8, tn: 8, wgx: 8, wgy: 1 },
      { tm: 8, tn: 16, wgx: 8, wgy: 8 },
      { tm: 8, tn: 16, wgx: 8, wgy: 1, vec: 4 },
      { tm: 16, tn: 16, wgx: 16, wgy: 1, vec: 4 },
      { tm: 16, tn: 16, wgx: 8, wgy: 2, vec: 4 },
      { tm: 4, tn: 4, wgx: 16, wgy: 16, bk: 16 },
      { tm: 8, tn: 8, wgx: 8, wgy: 8, bk: 16 },
      { tm: 8, tn: 8, wgx: 8, wgy: 1, kz: 4 },
      { tm: 8, tn: 16, wgx: 8, wgy: 1, vec: 4, kz: 2 },
    );
    if (sk) {
      list.push(
        { tm: 8, tn: 16, wgx: 8, wgy: 1, splitK: 4 },
        { tm: 16, tn: 16, wgx: 8, wgy: 1, vec: 4, splitK: 2 },
        { tm: 16, tn: 16, wgx: 8, wgy: 1, vec: 4, splitK: 8 },
      );
    }
  }
  return list;
}

/** Limits no candidate of the space reaches: every variant's WGSL can be generated. */
const UNBOUNDED: MatmulLimits = {
  maxComputeInvocationsPerWorkgroup: 1 << 16,
  maxComputeWorkgroupSizeX: 1 << 16,
  maxComputeWorkgroupSizeY: 1 << 16,
  maxComputeWorkgroupSizeZ: 1 << 16,
  maxComputeWorkgroupStorageSize: 1 << 30,
};

/**
 * Hash of the matmul generator's output for a form and an adapter class: the WGSL of every
 * variant of the class's full space (and of the split-K reduction), so a change to any kernel's
 * code makes old entries misses.
 */
function matmulSourceHash(trans: MatmulTrans, adapterClass: AdapterClass): string {
  return sourceHash(`matmul:${trans}:${adapterClass}`, () => [
    ...matmulCandidates({ adapterClass, splitK: true }).map((c) =>
      matmulKernel({ ...c.params, trans }, UNBOUNDED).code
    ),
    matmulReduceKernel().code,
  ]);
}

/**
 * Why a candidate cannot run a shape on a device (limits, its loop budget, vec4 divisibility, a
 * short reduction for split-K), or undefined.
 */
export function matmulPrune(
  p: MatmulBlocking,
  s: MatmulShape,
  limits: MatmulLimits,
): string | undefined {
  const q = { ...p, trans: s.trans };
  const sk = p.splitK ?? 1, kz = p.kz ?? 1;
  if (sk > 1 && s.inner / sk < 64) {
    return `split-K ${sk} leaves < 64 of inner = ${s.inner} per slice`;
  }
  if (kz > 1 && s.inner / kz < 16) {
    return `kz ${kz} leaves < 16 of inner = ${s.inner} per invocation`;
  }
  return matmulLimitsProblem(q, limits) ?? matmulShapeProblem(q, s) ??
    matmulLoopProblem(q, s, limits.loopBudget);
}

/** Options of `matmulTask`. */
export interface MatmulTaskOptions {
  /** Candidates (default: the adapter class's full space for the shape), the default first. */
  candidates?: Candidate<MatmulBlocking>[];
  /** Seed of the random operands. Default 1. */
  seed?: number;
  /**
   * Builds the dispatches of a candidate (default `matmulDispatches`): tests inject a broken
   * kernel here to see it disqualified.
   */
  build?: (ctx: KernelContext, call: MatmulCall) => Dispatch[];
}

/** A tuning task over scratch buffers the task owns; `destroy()` frees them. */
export interface MatmulTuneTask extends TuneTask<MatmulBlocking> {
  destroy(): void;
}

/**
 * The tuning task of one product shape. Operands are random, in buffers the task allocates
 * (trials never touch a caller's buffers); `check` fills C with NaN, runs the candidate and
 * accepts an error against the float64 reference of at most 2x the naive float32 error plus a
 * floor (as the kernel tests do); `time` runs it `timingReps` times per submit and
 * returns ms per run from GPU timestamps when the device has them, else the wall clock around a
 * submit and `onSubmittedWorkDone`.
 */
export function matmulTask(
  ctx: KernelContext,
  shape: MatmulShape,
  o: MatmulTaskOptions = {},
): MatmulTuneTask {
  const { trans, M, N, inner } = shape, dev = ctx.gpu.device;
  const limits = gpuLimits(ctx.gpu);
  const build = o.build ?? matmulDispatches;
  const rand = randomOperands(o.seed ?? 1);
  const a = rand(M * inner), b = rand(N * inner);
  const ab = storageBuffer(dev, a, "tune a"), bb = storageBuffer(dev, b, "tune b");
  const cb = storageBuffer(dev, M * N * 4, "tune c");
  let ref: { f64: Float64Array; tol: number } | undefined;
  const reference = () => {
    if (!ref) {
      const f64 = matmulRef(a, b, shape);
      const naive = matmulRef(a, b, { ...shape, precision: "f32" });
      let base = 0;
      for (let i = 0; i < f64.length; i++) base = Math.max(base, Math.abs(naive[i] - f64[i]));
      ref = { f64, tol: 2 * base + 1e-6 };
    }
    return ref;
  };
  const prepared = new Map<string, Dispatch[]>();
  const dispatches = (p: MatmulBlocking) => {
    const key = JSON.stringify(p);
    let ds = prepared.get(key);
    if (!ds) {
      ds = build(ctx, { a: ab, b: bb, c: cb, M, N, inner, trans, params: p });
      prepared.set(key, ds);
    }
    return ds;
  };
  const reps = timingReps(2 * M * N * inner);
  const adapterClass = ctx.gpu.adapterClass;
  const candidates = o.candidates ?? matmulCandidates({ adapterClass, shape, limits });
  return {
    ...matmulKeyParts(shape, adapterClass),
    candidates,
    prune: (p) =>
      p.f16 && !ctx.gpu.f16 ? "adapter lacks shader-f16" : matmulPrune(p, shape, limits),
    check: async (p) => {
      upload(dev, cb, new Float32Array(M * N).fill(NaN));
      dev.pushErrorScope("validation");
      const ds = dispatches(p);
      submit(ctx, ds);
      const err = await dev.popErrorScope();
      if (err) throw new Error(err.message);
      const got = new Float32Array(await readback(dev, cb, M * N * 4));
      const { f64, tol } = reference();
      for (let i = 0; i < f64.length; i++) {
        if (!(Math.abs(got[i] - f64[i]) <= tol)) return false;
      }
      return true;
    },
    time: (p) => timeDispatches(ctx, dispatches(p), reps),
    destroy: () => {
      for (const ds of prepared.values()) destroyDispatches(ds);
      for (const x of [ab, bb, cb]) x.destroy();
    },
  };
}

/** Options of `tunedMatmulChooser`. */
export interface MatmulChooserOptions extends TunedOn {
  /**
   * The device's limits and loop budget (`gpuLimits`): a cached variant that breaks them is not
   * used. Default: WebGPU's limits, no loop budget.
   */
  limits?: MatmulLimits;
  /** Return split-K variants (two dispatches, `matmulDispatches`). Default false. */
  allowSplitK?: boolean;
}

/**
 * The runtime's matmul choice: for a product shape, the tuned variant of its bucket on this
 * adapter when the cache has one that fits the exact shape and the device, else undefined (the
 * caller's default). Never measures.
 */
export function tunedMatmulChooser(
  cache: TuneCacheData,
  o: MatmulChooserOptions,
): MatmulChooser {
  return (s) => tunedMatmulParams(cache, o, s);
}

/**
 * `tunedMatmulChooser` for one shape: the fastest timed trial this caller can use (the winner, or
 * the best one-dispatch variant when split-K is not allowed).
 */
export function tunedMatmulParams(
  cache: TuneCacheData,
  o: MatmulChooserOptions,
  s: MatmulShape,
): MatmulBlocking | undefined {
  const limits: MatmulLimits = o.limits ?? WEBGPU_DEFAULT_LIMITS;
  const parts = matmulKeyParts(s, o.adapter.adapterClass);
  return timedTrials(cache, { ...o, ...parts }, isMatmulBlocking).find((p) =>
    ((p.splitK ?? 1) === 1 || o.allowSplitK) &&
    !matmulShapeProblem({ ...p, trans: s.trans }, s) &&
    !matmulLimitsProblem({ ...p, trans: s.trans }, limits) &&
    !matmulLoopProblem({ ...p, trans: s.trans }, s, limits.loopBudget)
  );
}

/** True if `x` is a well-formed blocking (positive integers, known knobs, vec 1 or 4). */
function isMatmulBlocking(x: unknown): x is MatmulBlocking {
  if (typeof x !== "object" || x === null) return false;
  const p = x as Record<string, unknown>;
  const known = ["tm", "tn", "wgx", "wgy", "vec", "bk", "kz", "splitK"];
  const int = (v: unknown, min: number) =>
    typeof v === "number" && Number.isInteger(v) && v >= min && v <= 1 << 16;
  return Object.keys(p).every((k) => known.includes(k)) &&
    ["tm", "tn", "wgx", "wgy"].every((k) => int(p[k], 1)) &&
    (p.vec === undefined || p.vec === 1 || p.vec === 4) &&
    (p.bk === undefined || int(p.bk, 0)) && (p.kz === undefined || int(p.kz, 1)) &&
    (p.splitK === undefined || int(p.splitK, 1)) &&
    !(typeof p.bk === "number" && p.bk > 0 && ((p.kz ?? 1) !== 1 || (p.vec === 4 && p.bk % 4)));
}

/** One matmul shape of a training step: how many times a step runs it, and what it computes. */
export interface MatmulUse extends MatmulShape {
  count: number;
  /** The products of this shape, e.g. `q_proj, o_proj, d q input`. */
  what: string;
}

/**
 * Every matmul of one training step of a config (forward and backward), merged by shape in the
 * order the step first records them: read from a training `ModelGraph` built for the config's
 * batch shape (runtime/model/graph.ts names each product it records), then freed.
 */
export function configMatmulShapes(ctx: KernelContext, config: Config): MatmulUse[] {
  const params = new ModelParams(ctx, config.model);
  let graph: ModelGraph | undefined;
  try {
    graph = new ModelGraph(ctx, params, configSpec(config.phd), {
      batch: config.train.batch_size,
      L: config.train.seq_len,
      training: true,
    });
    const uses: MatmulUse[] = [];
    for (const { what, shape: s } of graph.matmuls) {
      const same = uses.find((u) =>
        u.trans === s.trans && u.M === s.M && u.N === s.N && u.inner === s.inner
      );
      if (!same) uses.push({ ...s, count: 1, what });
      else {
        same.count++;
        if (!same.what.split(", ").includes(what)) same.what += `, ${what}`;
      }
    }
    return uses;
  } finally {
    graph?.destroy();
    params.destroy();
  }
}
