/**
 * Autotuning of kernel variants. A kernel family offers a named list of candidates with its safe
 * default first; candidates that break the adapter's limits are pruned before they are built, one
 * that fails to build or gives wrong numbers is disqualified, the rest are timed (warm-up, then the
 * median of several runs). Two families: matmuls (one task per product shape) and the training
 * attention (forward then backward in one submit; tiles, register blocks, staging, fused or dense
 * for the model's layout). Results live in an inspectable JSON cache keyed by the adapter, the Deno
 * version, a hash of the kernel source and a shape bucket; a hit does no measuring. Browser-safe:
 * reading and writing the cache file is the host layer's job (runtime/host/tune_cache.ts).
 */
import { readback, storageBuffer, upload } from "../gpu/resources.ts";
import { destroyDispatches, type Dispatch, type KernelContext, submit } from "../gpu/kernel.ts";
import {
  DEFAULT_MATMUL,
  deviceMatmulLimits,
  type MatmulBlocking,
  type MatmulCall,
  type MatmulChooser,
  matmulDispatches,
  matmulKernel,
  type MatmulLimits,
  matmulLimitsProblem,
  matmulReduceKernel,
  type MatmulShape,
  matmulShapeProblem,
  type MatmulTrans,
  matmulVariantName,
} from "../kernels/matmul.ts";
import { matmulRef } from "../../reference/kernels.ts";
import {
  attentionDefaults,
  type AttentionKernelKind,
  buildAttentionKernel,
  defaultTiles,
  fitBlock,
  type KernelLimits,
  type KernelVariant,
  type Staging,
  type StorageType,
} from "../../compiler/codegen/attention_kernels.ts";
import type { Layout } from "../../compiler/layout.ts";
import { type Config, configSpec } from "../model/config.ts";
import { headDim } from "../model/params.ts";
import { specBindings } from "../../dsl/eval.ts";
import type { AttentionSpec } from "../../dsl/spec.ts";
import {
  type AttentionConfig,
  type AttentionRun,
  type BackwardBuffers,
  FlashAttention,
} from "../kernels/attention.ts";
import { referenceAttention } from "../../reference/attention.ts";

/** Identity of an adapter, as part of a tuning key. */
export interface AdapterId {
  vendor: string;
  architecture: string;
  description: string;
}

/** One variant of a kernel: a name (shown to users) and the parameters that build it. */
export interface Candidate<P> {
  name: string;
  params: P;
}

/** What a tuning run found for one key. */
export interface TuneEntry {
  kernel: string;
  bucket: string;
  /** Name of the chosen candidate. */
  variant: string;
  params: unknown;
  default_ms: number;
  best_ms: number;
  /** Every candidate: its parameters and median time, or why it was pruned or disqualified. */
  trials: { name: string; params?: unknown; ms?: number; skipped?: string }[];
  at: string;
}

/** The cache file's content. */
export interface TuneCacheData {
  version: 1;
  entries: Record<string, TuneEntry>;
}

/** An empty cache. */
export function emptyCache(): TuneCacheData {
  return { version: 1, entries: {} };
}

/** True if `x` has the cache's shape (anything else is ignored with a warning, never trusted). */
export function isTuneCache(x: unknown): x is TuneCacheData {
  if (typeof x !== "object" || x === null) return false;
  const c = x as TuneCacheData;
  if (c.version !== 1 || typeof c.entries !== "object" || c.entries === null) return false;
  return Object.values(c.entries).every((e) =>
    typeof e === "object" && e !== null && typeof e.variant === "string" &&
    typeof e.best_ms === "number" && typeof e.kernel === "string"
  );
}

/** A 53-bit FNV-1a style hash of a string, in hex (kernel sources, keys). */
export function hashText(s: string): string {
  let h1 = 0x811c9dc5, h2 = 0x01000193;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    h1 = Math.imul(h1 ^ c, 0x01000193) >>> 0;
    h2 = Math.imul(h2 ^ c, 0x5bd1e995) >>> 0;
  }
  return (h2 & 0x1fffff).toString(16).padStart(6, "0") + h1.toString(16).padStart(8, "0");
}

/** A shape bucket: each dimension rounded up to a power of two, e.g. `k64_m1024_n256`. */
export function shapeBucket(dims: Record<string, number>): string {
  return Object.keys(dims).sort().map((k) =>
    `${k}${2 ** Math.ceil(Math.log2(Math.max(1, dims[k])))}`
  )
    .join("_");
}

/** The cache key of a tuning result. */
export function tuneKey(
  o: { adapter: AdapterId; deno: string; kernel: string; sourceHash: string; bucket: string },
): string {
  const a = o.adapter;
  return [
    o.kernel,
    o.bucket,
    o.sourceHash,
    `deno${o.deno}`,
    `${a.vendor}/${a.architecture}/${a.description}`,
  ]
    .join("|");
}

/** How one tuning run measures and checks candidates. */
export interface TuneTask<P> {
  kernel: string;
  bucket: string;
  /** Hash of the kernel family's source (e.g. of the default candidate's WGSL). */
  sourceHash: string;
  /** Candidates, the safe default first. */
  candidates: Candidate<P>[];
  /** Why a candidate cannot run on this adapter (limits), or undefined if it can. */
  prune?: (p: P) => string | undefined;
  /** Builds the candidate, runs it once on scratch buffers and compares with the reference. */
  check: (p: P) => Promise<boolean>;
  /** Runs the candidate once and returns milliseconds (GPU timestamps when available). */
  time: (p: P) => Promise<number>;
}

/** Options of an `Autotuner`. */
export interface TunerOptions {
  adapter: AdapterId;
  deno: string;
  /** Untimed runs before timing. Default 2. */
  warmup?: number;
  /** Timed runs; the median counts. Default 5. */
  runs?: number;
  /** Progress lines (e.g. `matmul k64_m1024_n256: 3/8 tile16x4`). */
  progress?: (line: string) => void;
}

/** Chooses and remembers the fastest correct variant per kernel, shape bucket and adapter. */
export class Autotuner {
  /** Candidates measured since creation (0 on a warm cache). */
  measured = 0;

  constructor(readonly cache: TuneCacheData, readonly o: TunerOptions) {}

  /** The key of a task on this adapter. */
  key(task: { kernel: string; bucket: string; sourceHash: string }): string {
    return tuneKey({ ...task, adapter: this.o.adapter, deno: this.o.deno });
  }

  /** The tuned entry for a task, if any (no measuring). */
  lookup(task: { kernel: string; bucket: string; sourceHash: string }): TuneEntry | undefined {
    return this.cache.entries[this.key(task)];
  }

  /** The parameters to use: the tuned candidate if known, else the default (never measures). */
  choose<P>(task: Pick<TuneTask<P>, "kernel" | "bucket" | "sourceHash" | "candidates">): P {
    const e = this.lookup(task);
    return (e && task.candidates.find((c) => c.name === e.variant)?.params) ??
      task.candidates[0].params;
  }

  /**
   * Tunes a task unless the cache has it; returns its entry. Every candidate is pruned or checked
   * first; the survivors are then warmed up and timed in rounds (one run of each per round), so
   * a burst of load from another process slows every candidate alike rather than one.
   */
  async tune<P>(task: TuneTask<P>): Promise<TuneEntry> {
    const cached = this.lookup(task);
    if (cached) return cached;
    const warmup = this.o.warmup ?? 2, runs = this.o.runs ?? 5;
    const verdict: (string | number[])[] = [];
    const n = task.candidates.length;
    const why = (e: unknown) => `disqualified: ${(e as Error).message.split("\n")[0]}`;
    for (const [i, c] of task.candidates.entries()) {
      this.o.progress?.(`${task.kernel} ${task.bucket}: ${i + 1}/${n} ${c.name}`);
      const pruned = task.prune?.(c.params);
      if (pruned) {
        verdict.push(`pruned: ${pruned}`);
        continue;
      }
      try {
        verdict.push((await task.check(c.params)) ? [] : "disqualified: wrong numbers");
      } catch (e) {
        verdict.push(why(e));
      }
    }
    const live = () => task.candidates.flatMap((_, i) => (Array.isArray(verdict[i]) ? [i] : []));
    for (let round = 0; round < warmup + runs; round++) {
      for (const i of live()) {
        try {
          const ms = await task.time(task.candidates[i].params);
          if (round >= warmup) (verdict[i] as number[]).push(ms);
        } catch (e) {
          verdict[i] = why(e);
        }
      }
    }
    const trials: TuneEntry["trials"] = [];
    let best: { c: Candidate<P>; ms: number } | undefined;
    let defaultMs = NaN;
    for (const [i, c] of task.candidates.entries()) {
      const v = verdict[i];
      if (typeof v === "string") {
        trials.push({ name: c.name, skipped: v });
        continue;
      }
      const ms = median(v);
      this.measured++;
      trials.push({ name: c.name, params: c.params, ms });
      if (i === 0) defaultMs = ms;
      if (!best || ms < best.ms) best = { c, ms };
    }
    if (!best) {
      throw new Error(`autotune ${task.kernel} ${task.bucket}: no candidate ran correctly`);
    }
    const entry: TuneEntry = {
      kernel: task.kernel,
      bucket: task.bucket,
      variant: best.c.name,
      params: best.c.params,
      default_ms: defaultMs,
      best_ms: best.ms,
      trials,
      at: new Date().toISOString(),
    };
    this.cache.entries[this.key(task)] = entry;
    return entry;
  }
}

/** Median of a non-empty list. */
export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b), m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

// ---------------------------------------------------------------------------------------------
// Matmul: the variant space, one tuning task per product shape, and the runtime's chooser.
//
// The runtime calls, once per model build:
//   tunedMatmulChooser(cache, { adapter: adapterIdOf(ctx.gpu), deno, limits }) -> MatmulChooser
//   (host: `loadMatmulChooser(ctx)` in runtime/host/tune_cache.ts reads .cache/autotune.json)
// and passes it as `GraphOptions.matmul`: `(shape: {trans, M, N, K}) => MatmulBlocking | undefined`,
// the tuned variant of the shape's bucket, or undefined (the default) for shapes not tuned.

/** The identity of a context's adapter (the tuning key's adapter part). */
export function adapterIdOf(gpu: { adapter: GPUAdapter; adapterName: string }): AdapterId {
  const i = gpu.adapter.info;
  return {
    vendor: i.vendor || "unknown",
    architecture: i.architecture || "",
    description: i.description || gpu.adapterName,
  };
}

/** The tuner's kernel name of a matmul form (`matmul:nt`, ...). */
export function matmulKernelName(trans: MatmulTrans): string {
  return `matmul:${trans}`;
}

/** The shape bucket of a product: M, N, K rounded up to powers of two. */
export function matmulBucket(s: MatmulShape): string {
  return shapeBucket({ m: s.M, n: s.N, k: s.K });
}

/**
 * The variant space (the same for the three forms), the safe default first. `quick` keeps the
 * variants that won on the adapters measured so far (llvmpipe: the largest register blocks, one
 * SIMD row of invocations, vec4 loads; split-K for long reductions); the full space adds smaller
 * blocks and wider workgroups (what discrete GPUs prefer), workgroup-memory staging and the
 * in-workgroup split-K, whose compiles take up to a minute each on llvmpipe (cached by Mesa
 * afterwards). `splitK: false` leaves out the two-dispatch variants.
 */
export function matmulCandidates(
  o: { quick?: boolean; splitK?: boolean } = {},
): Candidate<MatmulBlocking>[] {
  const sk = o.splitK !== false;
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
  return list.map((params) => ({ name: matmulVariantName(params), params }));
}

const sourceHashes = new Map<MatmulTrans, string>();

/**
 * Hash of the matmul generator's output for a form: the WGSL of every variant of the full space
 * (and of the split-K reduction), so a change to any kernel's code makes old entries misses.
 */
export function matmulSourceHash(trans: MatmulTrans): string {
  let h = sourceHashes.get(trans);
  if (!h) {
    const limits = {
      maxComputeInvocationsPerWorkgroup: 1 << 16,
      maxComputeWorkgroupSizeX: 1 << 16,
      maxComputeWorkgroupSizeY: 1 << 16,
      maxComputeWorkgroupSizeZ: 1 << 16,
      maxComputeWorkgroupStorageSize: 1 << 30,
    };
    const codes = matmulCandidates({ splitK: true }).map((c) =>
      matmulKernel({ ...c.params, trans }, limits).code
    );
    h = hashText([...codes, matmulReduceKernel().code].join("\n//\n"));
    sourceHashes.set(trans, h);
  }
  return h;
}

/** Why a candidate cannot run a shape on a device (limits, vec4 divisibility, short K for split-K). */
export function matmulPrune(
  p: MatmulBlocking,
  s: MatmulShape,
  limits: MatmulLimits,
): string | undefined {
  const q = { ...p, trans: s.trans };
  const sk = p.splitK ?? 1, kz = p.kz ?? 1;
  if (sk > 1 && s.K / sk < 64) return `split-K ${sk} leaves < 64 of K = ${s.K} per slice`;
  if (kz > 1 && s.K / kz < 16) return `kz ${kz} leaves < 16 of K = ${s.K} per invocation`;
  return matmulLimitsProblem(q, limits) ?? matmulShapeProblem(q, s);
}

/** Options of `matmulTask`. */
export interface MatmulTaskOptions {
  /** Candidates (default `matmulCandidates()`), the default first. */
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
  const { trans, M, N, K } = shape, dev = ctx.gpu.device;
  const limits = deviceMatmulLimits(dev);
  const build = o.build ?? matmulDispatches;
  let seed = (o.seed ?? 1) >>> 0;
  const rand = () => {
    seed = (seed + 0x6d2b79f5) >>> 0;
    let t = seed;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296 * 2 - 1;
  };
  const a = Float32Array.from({ length: M * K }, rand);
  const b = Float32Array.from({ length: N * K }, rand);
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
      ds = build(ctx, { a: ab, b: bb, c: cb, M, N, K, trans, params: p });
      prepared.set(key, ds);
    }
    return ds;
  };
  const reps = timingReps(2 * M * N * K);
  const candidates = o.candidates ?? matmulCandidates();
  return {
    kernel: matmulKernelName(trans),
    bucket: matmulBucket(shape),
    sourceHash: matmulSourceHash(trans),
    candidates,
    prune: (p) => matmulPrune(p, shape, limits),
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

/**
 * Runs per timed submit for a product of `flops`: about 3e8 FLOP (~150 ms on llvmpipe, whose
 * submit-to-`onSubmittedWorkDone` fence alone costs ~12 ms in Deno), at most 64.
 */
export function timingReps(flops: number): number {
  return Math.max(1, Math.min(64, Math.round(3e8 / flops)));
}

/**
 * Milliseconds per run of `ds` (each run: every dispatch in order), `reps` runs in one compute
 * pass: GPU timestamps at the pass's start and end when the device has `timestamp-query`, else
 * the wall clock from submit to `onSubmittedWorkDone`.
 */
export async function timeDispatches(
  ctx: KernelContext,
  ds: readonly Dispatch[],
  reps = 1,
): Promise<number> {
  const dev = ctx.gpu.device;
  const runs = Array.from({ length: reps }, () => ds).flat();
  if (!ctx.gpu.timestamps) {
    const t0 = performance.now();
    submit(ctx, runs);
    await dev.queue.onSubmittedWorkDone();
    return (performance.now() - t0) / reps;
  }
  const qs = dev.createQuerySet({ type: "timestamp", count: 2 });
  const res = dev.createBuffer({
    size: 16,
    usage: GPUBufferUsage.QUERY_RESOLVE | GPUBufferUsage.COPY_SRC,
  });
  try {
    const enc = dev.createCommandEncoder();
    const pass = enc.beginComputePass({
      timestampWrites: { querySet: qs, beginningOfPassWriteIndex: 0, endOfPassWriteIndex: 1 },
    });
    for (const d of runs) {
      if (d.grid.some((g) => g === 0)) continue;
      pass.setPipeline(d.pipeline);
      pass.setBindGroup(0, d.bindGroup);
      pass.dispatchWorkgroups(...d.grid);
    }
    pass.end();
    enc.resolveQuerySet(qs, 0, 2, res, 0);
    dev.queue.submit([enc.finish()]);
    const t = new BigUint64Array(await readback(dev, res, 16));
    return Number(t[1] - t[0]) / 1e6 / reps;
  } finally {
    qs.destroy();
    res.destroy();
  }
}

/** Options of `tunedMatmulChooser`. */
export interface ChooserOptions {
  adapter: AdapterId;
  deno: string;
  /** The device's limits: a cached variant that breaks them is not used. */
  limits?: MatmulLimits;
  /** Return split-K variants (two dispatches, `matmulDispatches`). Default false. */
  allowSplitK?: boolean;
}

/**
 * The runtime's matmul choice: for a product shape, the tuned variant of its bucket on this
 * adapter when the cache has one that fits the exact shape and the device, else undefined (the
 * caller's default). Never measures.
 */
export function tunedMatmulChooser(cache: TuneCacheData, o: ChooserOptions): MatmulChooser {
  return (s) => tunedMatmulParams(cache, o, s);
}

/** `tunedMatmulChooser` for one shape. */
export function tunedMatmulParams(
  cache: TuneCacheData,
  o: ChooserOptions,
  s: MatmulShape,
): MatmulBlocking | undefined {
  const key = tuneKey({
    adapter: o.adapter,
    deno: o.deno,
    kernel: matmulKernelName(s.trans),
    sourceHash: matmulSourceHash(s.trans),
    bucket: matmulBucket(s),
  });
  const e = cache.entries[key];
  if (!e || !Array.isArray(e.trials)) return undefined;
  // The fastest timed trial this caller can use: the winner, or the best one-dispatch variant
  // when split-K is not allowed. Parameters from the file are checked, never trusted.
  const usable = e.trials
    .filter((t) => typeof t.ms === "number" && isMatmulBlocking(t.params))
    .sort((x, y) => x.ms! - y.ms!)
    .map((t) => t.params as MatmulBlocking)
    .filter((p) =>
      ((p.splitK ?? 1) === 1 || o.allowSplitK) &&
      !matmulShapeProblem({ ...p, trans: s.trans }, s) &&
      !matmulLimitsProblem({ ...p, trans: s.trans }, o.limits ?? SAFE_LIMITS)
    );
  return usable[0];
}

/** WebGPU's guaranteed limits (what a chooser without the device's limits assumes). */
const SAFE_LIMITS: MatmulLimits = {
  maxComputeInvocationsPerWorkgroup: 256,
  maxComputeWorkgroupSizeX: 256,
  maxComputeWorkgroupSizeY: 256,
  maxComputeWorkgroupSizeZ: 64,
  maxComputeWorkgroupStorageSize: 16384,
};

/** True if `x` is a well-formed blocking (positive integers, known knobs, vec 1 or 4). */
export function isMatmulBlocking(x: unknown): x is MatmulBlocking {
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
    !(typeof p.bk === "number" && p.bk > 0 && ((p.vec ?? 1) !== 1 || (p.kz ?? 1) !== 1));
}

/** One matmul of a training step: its shape, how many times a step runs it, and what it is. */
export interface MatmulUse extends MatmulShape {
  count: number;
  what: string;
}

/**
 * Every matmul of one training step of a model (forward and backward, as runtime/model/graph.ts
 * records them), merged by shape: rows R = batch·K·seq_len; the LM head runs on the R/K
 * last-copy rows.
 */
export function trainingMatmulShapes(
  model: {
    hidden_size: number;
    intermediate_size: number;
    num_hidden_layers: number;
    num_attention_heads: number;
    num_key_value_heads: number;
    vocab_size: number;
  },
  rows: { batch: number; seq_len: number; K: number },
): MatmulUse[] {
  const C = model.hidden_size, I = model.intermediate_size, Ly = model.num_hidden_layers;
  const d = C / model.num_attention_heads, Hd = C, KVd = model.num_key_value_heads * d;
  const V = model.vocab_size, M = rows.batch * rows.seq_len, R = M * rows.K;
  const uses: MatmulUse[] = [];
  const add = (what: string, trans: MatmulTrans, m: number, n: number, k: number, count = Ly) => {
    const same = uses.find((u) => u.trans === trans && u.M === m && u.N === n && u.K === k);
    if (same) {
      same.count += count;
      same.what += `, ${what}`;
    } else uses.push({ trans, M: m, N: n, K: k, count, what });
  };
  add("q_proj", "nt", R, Hd, C);
  add("k_proj", "nt", R, KVd, C);
  add("v_proj", "nt", R, KVd, C);
  add("o_proj", "nt", R, C, Hd);
  add("gate_proj", "nt", R, I, C);
  add("up_proj", "nt", R, I, C);
  add("down_proj", "nt", R, C, I);
  add("lm_head", "nt", M, V, C, 1);
  add("d lm_head", "tn", V, C, M, 1);
  add("d head input", "nn", M, C, V, 1);
  add("d down input", "nn", R, I, C);
  add("d down_proj", "tn", C, I, R);
  add("d gate input", "nn", R, C, I);
  add("d up input", "nn", R, C, I);
  add("d gate_proj", "tn", I, C, R);
  add("d up_proj", "tn", I, C, R);
  add("d o input", "nn", R, Hd, C);
  add("d o_proj", "tn", C, Hd, R);
  add("d q input", "nn", R, C, Hd);
  add("d k input", "nn", R, C, KVd);
  add("d v input", "nn", R, C, KVd);
  add("d q_proj", "tn", Hd, C, R);
  add("d k_proj", "tn", KVd, C, R);
  add("d v_proj", "tn", KVd, C, R);
  return uses;
}

// ---------------------------------------------------------------------------------------------
// Attention: the variant space of the training attention (forward then backward), one tuning task
// per attention problem of a model, and the runtime's chooser.
//
// The layout (interleaved or grouped) and the storage type are the model's choices: the tuner
// measures the layout a model trains with and never changes it. The runtime calls, once per graph:
//   tunedAttentionChooser(cache, { adapter, deno, limits }) -> AttentionChooser
//   (host: `loadKernelChoosers(ctx).attention` in runtime/host/tune_cache.ts)
// and passes it as `GraphOptions.attentionChooser`: `(shape) => AttentionVariant | undefined`.

/** The knobs of an attention variant the tuner chooses (every one baked into the kernels). */
export interface AttentionVariant {
  /** Query rows per tile. */
  tileQ: number;
  /** Key rows per tile. */
  tileK: number;
  /** Query rows per invocation (forward, dQ); divides `tileQ`. */
  blockQ: number;
  /** Key rows per invocation (dK/dV); divides `tileK`. */
  blockK: number;
  /** Streamed rows from storage (`direct`) or through workgroup memory. */
  staging: Staging;
  /** `fused` (tile-skipping) or `dense` (every tile, masked). */
  variant: KernelVariant;
}

/** One attention problem of a model: its spec, head dim, layout and run shape. */
export interface AttentionShape {
  spec: AttentionSpec;
  headDim: number;
  /** The model's storage layout (part of the problem, never a tuning knob). */
  layout: Layout;
  /** Positions per copy (N = K·L tokens). */
  L: number;
  batch: number;
  heads: number;
  kvHeads: number;
  /** Storage type. Default f32 (the only one tuned for now). */
  dtype?: StorageType;
}

/** The model's attention hook: the variant to build for a problem, or undefined (the default). */
export type AttentionChooser = (shape: AttentionShape) => AttentionVariant | undefined;

/** What a tuning trial runs: `FlashAttention` (tests inject broken ones). */
export type AttentionRunner = Pick<FlashAttention, "forward" | "backward">;

/** Device limits an attention variant is checked against before anything is compiled. */
export interface AttentionLimits extends KernelLimits {
  maxComputeWorkgroupsPerDimension: number;
}

/** The attention limits of a device. */
export function deviceAttentionLimits(dev: GPUDevice): AttentionLimits {
  const l = dev.limits;
  return {
    maxComputeWorkgroupStorageSize: l.maxComputeWorkgroupStorageSize,
    maxComputeInvocationsPerWorkgroup: l.maxComputeInvocationsPerWorkgroup,
    maxComputeWorkgroupsPerDimension: l.maxComputeWorkgroupsPerDimension,
  };
}

/** WebGPU's guaranteed limits (what an attention chooser without the device's limits assumes). */
const SAFE_ATTENTION_LIMITS: AttentionLimits = {
  maxComputeWorkgroupStorageSize: 16384,
  maxComputeInvocationsPerWorkgroup: 256,
  maxComputeWorkgroupsPerDimension: 65535,
};

/** The name of an attention variant, e.g. `t32x32_b4x2`, `t16x16_b1x1_wg`, `t32x32_b4x2_dense`. */
export function attentionVariantName(p: AttentionVariant): string {
  return `t${p.tileQ}x${p.tileK}_b${p.blockQ}x${p.blockK}` +
    (p.staging === "workgroup" ? "_wg" : "") + (p.variant === "dense" ? "_dense" : "");
}

/** The variant `FlashAttention` builds when given no choices (`attentionDefaults`). */
export function defaultAttentionVariant(headDim: number): AttentionVariant {
  const { tileQ, tileK, blockQ, blockK, staging, variant } = attentionDefaults(headDim);
  return { tileQ, tileK, blockQ, blockK, staging, variant };
}

/**
 * The attention variant space for a head dim, the default (`defaultAttentionVariant`) first.
 * `quick` keeps direct-staged fused variants around the default (tiles 16 to 64, register blocks
 * up to 8: what llvmpipe rewards); the full space adds smaller blocks, uneven tiles, workgroup
 * staging (wide workgroups of one row per invocation: real GPUs; pruned where the two shared
 * tiles exceed the device's workgroup memory) and the dense baseline. Blocks are fitted to divide
 * their tiles; duplicates are dropped.
 */
export function attentionCandidates(
  headDim: number,
  o: { quick?: boolean } = {},
): Candidate<AttentionVariant>[] {
  const v = (
    tileQ: number,
    tileK: number,
    blockQ: number,
    blockK: number,
    staging: Staging = "direct",
    variant: KernelVariant = "fused",
  ): AttentionVariant => ({
    tileQ,
    tileK,
    blockQ: fitBlock(tileQ, blockQ),
    blockK: fitBlock(tileK, blockK),
    staging,
    variant,
  });
  const w = defaultTiles(headDim, "workgroup");
  const list: AttentionVariant[] = [
    defaultAttentionVariant(headDim),
    v(32, 32, 8, 4),
    v(64, 64, 8, 4),
    v(64, 32, 8, 4),
    v(16, 16, 4, 2),
    v(64, 64, 4, 2),
  ];
  if (!o.quick) {
    list.push(
      v(32, 32, 8, 8),
      v(32, 32, 4, 4),
      v(32, 32, 2, 2),
      v(32, 32, 1, 1),
      v(16, 16, 8, 4),
      v(16, 16, 2, 2),
      v(32, 16, 4, 2),
      v(16, 32, 4, 4),
      v(32, 64, 4, 4),
      v(64, 64, 8, 8),
      v(w.tileQ, w.tileK, 1, 1, "workgroup"),
      v(16, 16, 1, 1, "workgroup"),
      v(32, 32, 1, 1, "workgroup"),
      v(64, 64, 1, 1, "workgroup"),
      v(32, 32, 4, 2, "workgroup"),
      { ...defaultAttentionVariant(headDim), variant: "dense" },
      v(64, 64, 8, 4, "direct", "dense"),
    );
  }
  const seen = new Set<string>();
  return list.flatMap((params) => {
    const name = attentionVariantName(params);
    if (seen.has(name)) return [];
    seen.add(name);
    return [{ name, params }];
  });
}

/** The tuner's kernel name of the training attention in a layout (`attention:grouped`). */
export function attentionKernelName(layout: Layout): string {
  return `attention:${layout}`;
}

/** The shape bucket of an attention problem: batch, head dim, heads, KV heads and N = K·L. */
export function attentionBucket(s: AttentionShape): string {
  return shapeBucket({ b: s.batch, d: s.headDim, h: s.heads, kv: s.kvHeads, n: s.spec.K * s.L });
}

const KINDS: AttentionKernelKind[] = ["forward", "backward_dq", "backward_dkv"];

/** The kernel parameters of a variant for a problem. */
function attentionParams(p: AttentionVariant, s: AttentionShape) {
  return {
    spec: s.spec,
    headDim: s.headDim,
    tileQ: p.tileQ,
    tileK: p.tileK,
    blockQ: p.blockQ,
    blockK: p.blockK,
    layout: s.layout,
    dtype: s.dtype ?? "f32",
    variant: p.variant,
    staging: p.staging,
  };
}

const attentionHashes = new Map<string, string>();

/**
 * Hash of the attention kernels of a problem: the WGSL of the three passes of every variant of
 * the full space for its spec, head dim, layout and storage type, plus the spec's parameter values
 * (W, C, tables: they decide which tiles the fused kernels skip), so a change to the generator,
 * the mask or its parameters makes old entries misses.
 */
export function attentionSourceHash(s: AttentionShape): string {
  const bindings = JSON.stringify(specBindings(s.spec));
  const id = JSON.stringify([
    s.spec.name,
    s.spec.source,
    s.spec.K,
    s.headDim,
    s.layout,
    s.dtype ?? "f32",
    bindings,
  ]);
  let h = attentionHashes.get(id);
  if (!h) {
    const codes = attentionCandidates(s.headDim).flatMap((c) =>
      KINDS.map((k) => buildAttentionKernel(k, attentionParams(c.params, s)).code)
    );
    h = hashText([...codes, bindings].join("\n//\n"));
    attentionHashes.set(id, h);
  }
  return h;
}

/**
 * Why a variant cannot run a problem on a device: too many tiles for a grid dimension, too many
 * invocations or too much workgroup memory (the kernels' own limit checks, run on the generated
 * source: nothing is compiled).
 */
export function attentionPrune(
  p: AttentionVariant,
  s: AttentionShape,
  limits: AttentionLimits,
): string | undefined {
  const N = s.spec.K * s.L;
  for (const [what, tile] of [["query", p.tileQ], ["key", p.tileK]] as const) {
    const n = Math.ceil(N / tile);
    if (n > limits.maxComputeWorkgroupsPerDimension) {
      return `${n} ${what} tiles exceed maxComputeWorkgroupsPerDimension ` +
        `${limits.maxComputeWorkgroupsPerDimension}`;
    }
  }
  for (const kind of KINDS) {
    try {
      buildAttentionKernel(kind, attentionParams(p, s), limits);
    } catch (e) {
      return (e as Error).message.split("\n")[0];
    }
  }
  return undefined;
}

/** Options of `attentionTask`. */
export interface AttentionTaskOptions {
  /** Candidates (default `attentionCandidates(headDim)`), the default first. */
  candidates?: Candidate<AttentionVariant>[];
  /** Seed of the random inputs. Default 1. */
  seed?: number;
  /** Limits to prune against. Default: the device's. */
  limits?: AttentionLimits;
  /**
   * Builds a candidate's kernels (default `new FlashAttention`): tests inject a broken one here to
   * see it disqualified.
   */
  build?: (ctx: KernelContext, spec: AttentionSpec, config: AttentionConfig) => AttentionRunner;
  /**
   * Outputs are checked against the float64 CPU reference when batch·heads·N²·d is at most this
   * (default 2^25: the demo's problem), else against the default candidate's outputs (computed once).
   */
  referenceLimit?: number;
  /** Allowed error of each of o, dq, dk, dv relative to the tensor's largest |value|. Default 1e-3. */
  rtol?: number;
}

/** An attention tuning task over buffers the task owns; `destroy()` frees them. */
export interface AttentionTuneTask extends TuneTask<AttentionVariant> {
  /** Which reference `check` compares with. */
  reference: "float64" | "default";
  destroy(): void;
}

/**
 * The tuning task of one training attention problem: forward then backward (dQ, dK/dV) in one
 * submit, as a training step runs them. Inputs (q, k, v, dO) are random, in buffers the task
 * allocates (trials never touch a caller's buffers). `check` fills the outputs with NaN, runs the
 * candidate and compares o, dq, dk and dv with the reference (float64 on the CPU for small
 * problems, else the default candidate's outputs): every element within `rtol` of the tensor's
 * largest magnitude. `time` runs it a few times per submit (wall clock from submit to
 * `onSubmittedWorkDone`; the kernels record their own passes) and returns ms per run.
 */
export function attentionTask(
  ctx: KernelContext,
  shape: AttentionShape,
  o: AttentionTaskOptions = {},
): AttentionTuneTask {
  const dev = ctx.gpu.device;
  const { spec, headDim: d, layout, L, batch: B, heads: H, kvHeads: HKV } = shape;
  if ((shape.dtype ?? "f32") !== "f32") {
    throw new RangeError(`attention tuning runs f32 storage, got ${shape.dtype}`);
  }
  const N = spec.K * L, limits = o.limits ?? deviceAttentionLimits(dev);
  let seed = (o.seed ?? 1) >>> 0;
  const rand = (n: number) =>
    Float32Array.from({ length: n }, () => {
      seed = (seed + 0x6d2b79f5) >>> 0;
      let t = seed;
      t = Math.imul(t ^ (t >>> 15), t | 1);
      t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
      return ((t ^ (t >>> 14)) >>> 0) / 4294967296 * 2 - 1;
    });
  const qn = B * H * N * d, kvn = B * HKV * N * d, rows = B * H * N;
  const host = { q: rand(qn), k: rand(kvn), v: rand(kvn), dO: rand(qn) };
  const io: BackwardBuffers = {
    q: storageBuffer(dev, host.q, "tune q"),
    k: storageBuffer(dev, host.k, "tune k"),
    v: storageBuffer(dev, host.v, "tune v"),
    o: storageBuffer(dev, qn * 4, "tune o"),
    lse: storageBuffer(dev, rows * 4, "tune lse"),
    dout: storageBuffer(dev, host.dO, "tune dout"),
    delta: storageBuffer(dev, rows * 4, "tune delta"),
    dq: storageBuffer(dev, qn * 4, "tune dq"),
    dk: storageBuffer(dev, kvn * 4, "tune dk"),
    dv: storageBuffer(dev, kvn * 4, "tune dv"),
  };
  const outs = [["o", qn], ["dq", qn], ["dk", kvn], ["dv", kvn]] as const;
  const run: AttentionRun = { L, batch: B, heads: H, kvHeads: HKV };
  const build = o.build ??
    ((c: KernelContext, sp: AttentionSpec, cfg: AttentionConfig) =>
      new FlashAttention(c.gpu, c.cache, sp, cfg));
  const runners = new Map<string, AttentionRunner>();
  const runner = (p: AttentionVariant) => {
    const name = attentionVariantName(p);
    let r = runners.get(name);
    if (!r) {
      r = build(ctx, spec, { ...p, headDim: d, layout, dtype: "f32" });
      runners.set(name, r);
    }
    return r;
  };
  const encode = (p: AttentionVariant, reps: number) => {
    const r = runner(p), enc = dev.createCommandEncoder({ label: "attention tuning" });
    for (let i = 0; i < reps; i++) {
      r.forward(enc, io, run);
      r.backward(enc, io, run);
    }
    return enc.finish();
  };
  /** Runs a candidate once on NaN-filled outputs and reads o, dq, dk, dv back. */
  const runOnce = async (p: AttentionVariant): Promise<Float32Array[]> => {
    for (const [name, n] of outs) upload(dev, io[name], new Float32Array(n).fill(NaN));
    // Building and encoding (shader modules, pipelines): a validation error or a throw both
    // disqualify; the error scope is popped either way.
    dev.pushErrorScope("validation");
    let cmd: GPUCommandBuffer | undefined, thrown: unknown;
    try {
      cmd = encode(p, 1);
    } catch (e) {
      thrown = e;
    }
    const buildErr = await dev.popErrorScope();
    if (buildErr) throw new Error(buildErr.message);
    if (!cmd) throw thrown;
    dev.pushErrorScope("validation");
    dev.queue.submit([cmd]);
    const err = await dev.popErrorScope();
    if (err) throw new Error(err.message);
    return Promise.all(
      outs.map(async ([name, n]) => new Float32Array(await readback(dev, io[name], n * 4))),
    );
  };
  const work = B * H * N * N * d;
  const mode = work <= (o.referenceLimit ?? 2 ** 25) ? "float64" : "default";
  const candidates = o.candidates ?? attentionCandidates(d);
  let ref: Promise<ArrayLike<number>[]> | undefined;
  const reference = () => {
    ref ??= mode === "float64"
      ? Promise.resolve((() => {
        const r = referenceAttention(
          { spec, L, layout, batch: B, heads: H, kvHeads: HKV, headDim: d },
          host,
        );
        return [r.o, r.dq!, r.dk!, r.dv!];
      })())
      : runOnce(candidates[0].params).catch((e) => {
        throw new Error(`the default failed, nothing to compare with: ${(e as Error).message}`);
      });
    return ref;
  };
  const rtol = o.rtol ?? 1e-3;
  const reps = Math.max(1, Math.min(16, Math.round(2 ** 23 / work)));
  return {
    kernel: attentionKernelName(layout),
    bucket: attentionBucket(shape),
    sourceHash: attentionSourceHash(shape),
    candidates,
    reference: mode,
    prune: (p) => attentionPrune(p, shape, limits),
    check: async (p) => {
      const want = await reference();
      const got = await runOnce(p);
      return want.every((w, t) => {
        let big = 0;
        for (let i = 0; i < w.length; i++) big = Math.max(big, Math.abs(w[i]));
        const tol = rtol * big + 1e-6, g = got[t];
        for (let i = 0; i < w.length; i++) {
          if (!(Math.abs(g[i] - w[i]) <= tol)) return false;
        }
        return true;
      });
    },
    time: async (p) => {
      const cmd = encode(p, reps);
      const t0 = performance.now();
      dev.queue.submit([cmd]);
      await dev.queue.onSubmittedWorkDone();
      return (performance.now() - t0) / reps;
    },
    destroy: () => {
      for (const b of Object.values(io)) b.destroy();
    },
  };
}

/** Options of `tunedAttentionChooser`. */
export interface AttentionChooserOptions {
  adapter: AdapterId;
  deno: string;
  /** The device's limits: a cached variant that breaks them is not used. */
  limits?: AttentionLimits;
}

/**
 * The runtime's attention choice: for a problem, the fastest timed variant of its bucket on this
 * adapter that fits the device, else undefined (the default). Never measures.
 */
export function tunedAttentionChooser(
  cache: TuneCacheData,
  o: AttentionChooserOptions,
): AttentionChooser {
  return (s) => tunedAttentionParams(cache, o, s);
}

/** `tunedAttentionChooser` for one problem. */
export function tunedAttentionParams(
  cache: TuneCacheData,
  o: AttentionChooserOptions,
  s: AttentionShape,
): AttentionVariant | undefined {
  const e = cache.entries[
    tuneKey({
      adapter: o.adapter,
      deno: o.deno,
      kernel: attentionKernelName(s.layout),
      sourceHash: attentionSourceHash(s),
      bucket: attentionBucket(s),
    })
  ];
  if (!e || !Array.isArray(e.trials)) return undefined;
  // Parameters from the file are checked, never trusted.
  return e.trials
    .filter((t) => typeof t.ms === "number" && isAttentionVariant(t.params))
    .sort((x, y) => x.ms! - y.ms!)
    .map((t) => t.params as AttentionVariant)
    .find((p) => !attentionPrune(p, s, o.limits ?? SAFE_ATTENTION_LIMITS));
}

/** True if `x` is a well-formed attention variant (tiles 1..256, blocks 1..16 dividing them). */
export function isAttentionVariant(x: unknown): x is AttentionVariant {
  if (typeof x !== "object" || x === null) return false;
  const p = x as Record<string, unknown>;
  const known = ["tileQ", "tileK", "blockQ", "blockK", "staging", "variant"];
  const int = (v: unknown, max: number): v is number =>
    typeof v === "number" && Number.isInteger(v) && v >= 1 && v <= max;
  return Object.keys(p).length === known.length && known.every((k) => k in p) &&
    int(p.tileQ, 256) && int(p.tileK, 256) && int(p.blockQ, 16) && int(p.blockK, 16) &&
    p.tileQ % p.blockQ === 0 && p.tileK % p.blockK === 0 &&
    (p.staging === "direct" || p.staging === "workgroup") &&
    (p.variant === "fused" || p.variant === "dense");
}

/** The matmul shapes of one training step of a config. */
export function configMatmulShapes(config: Config): MatmulUse[] {
  return trainingMatmulShapes(config.model, {
    batch: config.train.batch_size,
    seq_len: config.train.seq_len,
    K: config.phd.K,
  });
}

/** The training attention problem of a config in a layout (every layer runs it once a step). */
export function configAttentionShape(
  config: Config,
  layout: Layout,
): AttentionShape & { count: number } {
  const m = config.model;
  return {
    spec: configSpec(config.phd),
    headDim: headDim(m),
    layout,
    L: config.train.seq_len,
    batch: config.train.batch_size,
    heads: m.num_attention_heads,
    kvHeads: m.num_key_value_heads,
    count: m.num_hidden_layers,
  };
}
