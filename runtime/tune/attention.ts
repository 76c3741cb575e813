/**
 * The attention family of the tuner: the variant space of the training attention (forward then
 * backward in one submit; tiles, register blocks, staging, fused or dense), one tuning task per
 * attention problem of a model, and the runtime's chooser. `attentionKeyParts` is its part of a
 * tuning key (runtime/tune/engine.ts `tuneKey`): the layout (`attention:grouped`), the shape
 * bucket (batch, head dim, heads, KV heads, N = K·L) and a hash of every variant's WGSL for the
 * spec and its parameter values.
 *
 * The layout (interleaved or grouped) and the storage type are the model's choices: the tuner
 * measures the layout a model trains with and never changes it. The runtime calls, once per graph:
 *   tunedAttentionChooser(cache, { adapter, deno, limits }) -> AttentionChooser
 *   (host: `loadKernelChoosers(ctx).attention` in runtime/host/tune_cache.ts)
 * and passes it as `GraphOptions.attentionChooser`: `(shape) => AttentionVariant | undefined`.
 * Browser-safe.
 */
import { readback, storageBuffer, upload } from "../gpu/resources.ts";
import {
  type AdapterClass,
  type DeviceLimits,
  gpuLimits,
  WEBGPU_DEFAULT_LIMITS,
} from "../gpu/device.ts";
import type { KernelContext } from "../gpu/kernel.ts";
import {
  ATTENTION_KINDS,
  attentionDefaults,
  attentionLoopProblem,
  buildAttentionKernel,
  defaultTiles,
  fitBlock,
  type KernelLimits,
  type KernelVariant,
  type Staging,
} from "../../compiler/codegen/attention_kernels.ts";
import type { Layout } from "../../compiler/layout.ts";
import { type Config, configSpec } from "../model/config.ts";
import { headDim } from "../model/params.ts";
import { specBindings } from "../../dsl/eval.ts";
import type { AttentionSpec } from "../../dsl/spec.ts";
import {
  type AttentionChooser,
  type AttentionConfig,
  type AttentionRun,
  type AttentionShape,
  type AttentionVariant,
  type BackwardBuffers,
  FlashAttention,
} from "../kernels/attention.ts";
import { referenceAttention } from "../../reference/attention.ts";
import type { Candidate, TuneCacheData, TunedOn, TuneKeyParts, TuneTask } from "./engine.ts";
import {
  randomOperands,
  shapeBucket,
  sourceHash,
  timedTrials,
  uniqueCandidates,
} from "./engine.ts";

/** What a tuning trial runs: `FlashAttention` (tests inject broken ones). */
export type AttentionRunner = Pick<FlashAttention, "forward" | "backward">;

/**
 * Device limits an attention variant is checked against before anything is compiled, and the
 * device's loop budget when it has one (`gpuLimits`).
 */
export type AttentionLimits =
  & KernelLimits
  & Pick<DeviceLimits, "maxComputeWorkgroupsPerDimension">
  & { loopBudget?: number };

/** The name of an attention variant, e.g. `t32x32_b4x2`, `t16x16_b1x1_wg`, `t32x32_b4x2_dense`. */
export function attentionVariantName(p: AttentionVariant): string {
  return `t${p.tileQ}x${p.tileK}_b${p.blockQ}x${p.blockK}` +
    (p.staging === "workgroup" ? "_wg" : "") + (p.variant === "dense" ? "_dense" : "");
}

/**
 * The variant `FlashAttention` builds when given no choices (`attentionDefaults`) on an adapter
 * class; `limits` (default WebGPU's guaranteed ones) size the gpu class's staged tiles.
 */
export function defaultAttentionVariant(
  headDim: number,
  adapterClass: AdapterClass,
  limits: KernelLimits = WEBGPU_DEFAULT_LIMITS,
): AttentionVariant {
  const { tileQ, tileK, blockQ, blockK, staging, variant } = attentionDefaults(headDim, {}, {
    adapterClass,
    limits,
  });
  return { tileQ, tileK, blockQ, blockK, staging, variant };
}

/** Options of `attentionCandidates`. */
export interface AttentionSpaceOptions {
  /** The adapter class whose space this is (runtime/gpu/device.ts `AdapterClass`). */
  adapterClass: AdapterClass;
  /** The variants around the default only. Default false (the full space). */
  quick?: boolean;
  /** The device's limits, for the gpu class's default. Default: WebGPU's. */
  limits?: KernelLimits;
}

/**
 * The attention variant space for a head dim on an adapter class, the default
 * (`defaultAttentionVariant`) first. `cpu`: `quick` keeps direct-staged fused variants around the
 * default (tiles 16 to 64, register blocks up to 8: what llvmpipe rewards); the full space adds
 * smaller blocks, uneven tiles, workgroup staging (wide workgroups of one row per invocation;
 * pruned where the two shared tiles exceed the device's workgroup memory) and the dense baseline.
 * `gpu`: `quick` keeps staged tiles of 16 to 64 rows, one or two per invocation, and one direct
 * variant; the full space adds every staged square tile the default can be (4 to 64), uneven
 * staged tiles and the dense baseline. Blocks are fitted to divide their tiles; duplicates are
 * dropped.
 */
export function attentionCandidates(
  headDim: number,
  o: AttentionSpaceOptions,
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
  const first = defaultAttentionVariant(headDim, o.adapterClass, o.limits);
  const space = o.adapterClass === "gpu" ? GPU_ATTENTION_SPACE : CPU_ATTENTION_SPACE;
  const list = [...space.quick(first, v), ...(o.quick ? [] : space.full(first, v, headDim))];
  return uniqueCandidates(list, attentionVariantName);
}

/** A variant of tiles, blocks (fitted to divide them), staging and variant. */
type MakeVariant = (
  tileQ: number,
  tileK: number,
  blockQ: number,
  blockK: number,
  staging?: Staging,
  variant?: KernelVariant,
) => AttentionVariant;

/** A class's space: the quick variants, then what the full space adds (the default first). */
interface AttentionSpace {
  quick(first: AttentionVariant, v: MakeVariant): AttentionVariant[];
  full(first: AttentionVariant, v: MakeVariant, headDim: number): AttentionVariant[];
}

/** The gpu class's space (see `attentionCandidates`). */
const GPU_ATTENTION_SPACE: AttentionSpace = {
  quick: (first, v) => [
    first,
    v(16, 16, 1, 1, "workgroup"),
    v(32, 32, 1, 1, "workgroup"),
    v(64, 64, 1, 1, "workgroup"),
    v(64, 64, 2, 2, "workgroup"),
    v(32, 32, 1, 1),
  ],
  full: (first, v) => [
    v(4, 4, 1, 1, "workgroup"),
    v(8, 8, 1, 1, "workgroup"),
    v(64, 32, 1, 1, "workgroup"),
    v(32, 64, 1, 1, "workgroup"),
    v(32, 32, 2, 2, "workgroup"),
    { ...first, variant: "dense" },
  ],
};

/** The cpu class's space (see `attentionCandidates`): what the tuner has always searched. */
const CPU_ATTENTION_SPACE: AttentionSpace = {
  quick: (first, v) => [
    first,
    v(32, 32, 8, 4),
    v(64, 64, 8, 4),
    v(64, 32, 8, 4),
    v(16, 16, 4, 2),
    v(64, 64, 4, 2),
  ],
  full: (first, v, headDim) => {
    const w = defaultTiles(headDim, "workgroup");
    return [
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
      { ...first, variant: "dense" },
      v(64, 64, 8, 4, "direct", "dense"),
    ];
  },
};

/**
 * What keys an attention problem's tuning result (with the adapter and the Deno version): the
 * source hash covers the adapter class's space, so a result tuned as the other class is a miss.
 */
export function attentionKeyParts(s: AttentionShape, adapterClass: AdapterClass): TuneKeyParts {
  return {
    kernel: attentionKernelName(s.layout),
    bucket: attentionBucket(s),
    sourceHash: attentionSourceHash(s, adapterClass),
  };
}

/** The tuner's kernel name of the training attention in a layout (`attention:grouped`). */
function attentionKernelName(layout: Layout): string {
  return `attention:${layout}`;
}

/** The shape bucket of an attention problem: batch, head dim, heads, KV heads and N = K·L. */
export function attentionBucket(s: AttentionShape): string {
  return shapeBucket({ b: s.batch, d: s.headDim, h: s.heads, kv: s.kvHeads, n: s.spec.K * s.L });
}

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

/**
 * Hash of the attention kernels of a problem: the WGSL of the three passes of every variant of
 * the full space for its spec, head dim, layout and storage type, plus the spec's parameter values
 * (W, C, tables: they decide which tiles the fused kernels skip), so a change to the generator,
 * the mask or its parameters makes old entries misses.
 */
function attentionSourceHash(s: AttentionShape, adapterClass: AdapterClass): string {
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
  const memo = adapterClass === "cpu" ? `attention:${id}` : `attention:${adapterClass}:${id}`;
  return sourceHash(memo, () => [
    ...attentionCandidates(s.headDim, { adapterClass }).flatMap((c) =>
      ATTENTION_KINDS.map((k) => buildAttentionKernel(k, attentionParams(c.params, s)).code)
    ),
    bindings,
  ]);
}

/**
 * Why a variant cannot run a problem on a device: too many tiles for a grid dimension, too many
 * invocations or too much workgroup memory (the kernels' own limit checks, run on the generated
 * source: nothing is compiled), or more loop passes than the device's loop budget.
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
  for (const kind of ATTENTION_KINDS) {
    try {
      buildAttentionKernel(kind, attentionParams(p, s), limits);
    } catch (e) {
      return (e as Error).message.split("\n")[0];
    }
  }
  return attentionLoopProblem(
    attentionParams(p, s),
    { N, group: s.heads / s.kvHeads },
    limits.loopBudget,
  );
}

/** Options of `attentionTask`. */
export interface AttentionTaskOptions {
  /** Candidates (default: the adapter class's full space), the default first. */
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
   * The whole problem is checked against the float64 CPU reference when batch·heads·N²·d is at
   * most this (default 2^25: the demo's problem); above it, two head groups of the same N in
   * float64 and every head against the default (see `attentionTask`).
   */
  referenceLimit?: number;
  /** Allowed error of each of o, dq, dk, dv relative to the tensor's largest |value|. Default 1e-3. */
  rtol?: number;
}

/** An attention tuning task over buffers the task owns; `destroy()` frees them. */
export interface AttentionTuneTask extends TuneTask<AttentionVariant> {
  /**
   * What `check` compares with: float64 on the whole problem, or on its first and last head
   * groups with every head against the default candidate (itself checked on them first).
   */
  reference: "float64" | "float64 head groups";
  destroy(): void;
}

/**
 * The tuning task of one training attention problem: forward then backward (dQ, dK/dV) in one
 * submit, as a training step runs them. Inputs (q, k, v, dO) are random, in buffers the task
 * allocates (trials never touch a caller's buffers). `check` fills the outputs with NaN, runs the
 * candidate at the tuned shape itself and compares o, dq, dk and dv with float64 on the CPU:
 * every element within `rtol` of the tensor's largest magnitude. Above `referenceLimit` the
 * float64 reference covers two head groups at the same N (a key/value head and its query heads:
 * batch 0's first and the last batch's last; heads and batches only shift offsets, and these are
 * the smallest and the largest), and every head must also equal the default candidate's outputs,
 * which are used only once the default has passed the same float64 check. So a variant wrong at
 * this shape is never chosen, even when every candidate errs alike. `time` runs it a few times per submit (wall clock from submit to
 * `onSubmittedWorkDone`; the kernels record their own passes) and returns ms per run.
 */
export function attentionTask(
  ctx: KernelContext,
  shape: AttentionShape,
  o: AttentionTaskOptions = {},
): AttentionTuneTask {
  if ((shape.dtype ?? "f32") !== "f32") {
    throw new RangeError(`attention tuning runs f32 storage, got ${shape.dtype}`);
  }
  const dev = ctx.gpu.device, { batch: B, heads: H, headDim: d } = shape;
  const N = shape.spec.K * shape.L, limits = o.limits ?? gpuLimits(ctx.gpu);
  const ops = tuneOperands(ctx, shape, o.seed ?? 1);
  const trials = attentionTrials(ctx, shape, ops, o.build);
  const adapterClass = ctx.gpu.adapterClass;
  const candidates = o.candidates ?? attentionCandidates(d, { adapterClass, limits });
  const ref = float64Check(shape, ops.host, o);
  // Above the reference limit, every head is also held to the default's outputs, which are used
  // only once the default has passed the float64 check itself.
  let want: Promise<Float32Array[] | undefined> | undefined;
  const byDefault = () =>
    want ??= ref.whole ? Promise.resolve(undefined) : (async () => {
      const got = await trials.runOnce(candidates[0].params).catch((e) => {
        throw new Error(`the default failed, nothing to compare with: ${(e as Error).message}`);
      });
      if (!ref.exact(got)) {
        throw new Error(
          `the default ${candidates[0].name} differs from float64 at this shape: nothing to ` +
            "compare the other heads with",
        );
      }
      return got;
    })();
  const reps = Math.max(1, Math.min(16, Math.round(2 ** 23 / (B * H * N * N * d))));
  return {
    ...attentionKeyParts(shape, adapterClass),
    candidates,
    reference: ref.whole ? "float64" : "float64 head groups",
    prune: (p) => attentionPrune(p, shape, limits),
    check: async (p) => {
      const others = await byDefault();
      const got = await trials.runOnce(p);
      return ref.exact(got) && (!others || got.every((x, t) => ref.close(x, others[t])));
    },
    time: async (p) => {
      const cmd = trials.encode(p, reps);
      const t0 = performance.now();
      dev.queue.submit([cmd]);
      await dev.queue.onSubmittedWorkDone();
      return (performance.now() - t0) / reps;
    },
    destroy: () => {
      for (const b of Object.values(ops.io)) b.destroy();
    },
  };
}

/** A tuning problem's random inputs on the host and its buffers (the outputs with their sizes). */
interface TuneOperands {
  host: { q: Float32Array; k: Float32Array; v: Float32Array; dO: Float32Array };
  io: BackwardBuffers;
  outs: readonly (readonly ["o" | "dq" | "dk" | "dv", number])[];
}

/** Random q, k, v and dO of `shape` (seeded) and every buffer forward and backward use. */
function tuneOperands(ctx: KernelContext, shape: AttentionShape, seed: number): TuneOperands {
  const dev = ctx.gpu.device, { batch: B, heads: H, kvHeads: HKV, headDim: d } = shape;
  const N = shape.spec.K * shape.L, rand = randomOperands(seed);
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
  return { host, io, outs: [["o", qn], ["dq", qn], ["dk", kvn], ["dv", kvn]] };
}

/**
 * Runs candidates on the task's buffers, each built once: `encode` records forward then backward
 * `reps` times; `runOnce` runs a candidate once on NaN-filled outputs and reads o, dq, dk, dv
 * back, throwing on a build or validation error (which disqualifies it).
 */
function attentionTrials(
  ctx: KernelContext,
  shape: AttentionShape,
  { io, outs }: TuneOperands,
  build: AttentionTaskOptions["build"] = (c, sp, cfg) =>
    new FlashAttention(c.gpu, c.cache, sp, cfg),
): {
  encode: (p: AttentionVariant, reps: number) => GPUCommandBuffer;
  runOnce: (p: AttentionVariant) => Promise<Float32Array[]>;
} {
  const dev = ctx.gpu.device, { spec, headDim, layout, L } = shape;
  const run: AttentionRun = { L, batch: shape.batch, heads: shape.heads, kvHeads: shape.kvHeads };
  const runners = new Map<string, AttentionRunner>();
  const runner = (p: AttentionVariant) => {
    const name = attentionVariantName(p);
    let r = runners.get(name);
    if (!r) {
      r = build(ctx, spec, { ...p, headDim, layout, dtype: "f32" });
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
  return { encode, runOnce };
}

/**
 * The float64 side of `check`: the whole problem when batch·heads·N²·d is at most
 * `referenceLimit`, else the first and the last head group (a key/value head and its query
 * heads: batch 0's first, the last batch's last). `exact` holds outputs (o, dq, dk, dv) to
 * float64 on those groups (computed on first use); `close` holds one tensor to another: every
 * value within `rtol` of the wanted tensor's largest magnitude (plus 1e-6).
 */
function float64Check(
  shape: AttentionShape,
  host: TuneOperands["host"],
  o: Pick<AttentionTaskOptions, "referenceLimit" | "rtol">,
): {
  whole: boolean;
  exact: (got: Float32Array[]) => boolean;
  close: (got: ArrayLike<number>, want: ArrayLike<number>) => boolean;
} {
  const { spec, L, layout, batch: B, heads: H, kvHeads: HKV, headDim: d } = shape;
  const N = spec.K * L, qn = B * H * N * d, kvn = B * HKV * N * d;
  const G = H / HKV, whole = B * H * N * N * d <= (o.referenceLimit ?? 2 ** 25);
  const groups = whole ? [{ q: [0, qn], kv: [0, kvn] }] : [0, B * HKV - 1].map((g) => ({
    q: [g * G * N * d, G * N * d],
    kv: [g * N * d, N * d],
  })).filter((g, i) => i === 0 || g.q[0] > 0);
  const part = (x: Float32Array, [at, n]: number[]) => x.subarray(at, at + n);
  const rtol = o.rtol ?? 1e-3;
  const close = (got: ArrayLike<number>, want: ArrayLike<number>) => {
    let big = 0;
    for (let i = 0; i < want.length; i++) big = Math.max(big, Math.abs(want[i]));
    const tol = rtol * big + 1e-6;
    for (let i = 0; i < want.length; i++) {
      if (!(Math.abs(got[i] - want[i]) <= tol)) return false;
    }
    return true;
  };
  let want: ArrayLike<number>[][] | undefined;
  const f64 = () =>
    want ??= groups.map(({ q, kv }) => {
      const r = referenceAttention(
        whole
          ? { spec, L, layout, batch: B, heads: H, kvHeads: HKV, headDim: d }
          : { spec, L, layout, batch: 1, heads: G, kvHeads: 1, headDim: d },
        { q: part(host.q, q), k: part(host.k, kv), v: part(host.v, kv), dO: part(host.dO, q) },
      );
      return [r.o, r.dq!, r.dk!, r.dv!];
    });
  const exact = (got: Float32Array[]) =>
    groups.every((g, i) => got.every((x, t) => close(part(x, t < 2 ? g.q : g.kv), f64()[i][t])));
  return { whole, exact, close };
}

/** Options of `tunedAttentionChooser`. */
export interface AttentionChooserOptions extends TunedOn {
  /**
   * The device's limits and loop budget (`gpuLimits`): a cached variant that breaks them is not
   * used. Default: WebGPU's limits, no loop budget.
   */
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
  const limits: AttentionLimits = o.limits ?? WEBGPU_DEFAULT_LIMITS;
  const parts = attentionKeyParts(s, o.adapter.adapterClass);
  return timedTrials(cache, { ...o, ...parts }, isAttentionVariant)
    .find((p) => !attentionPrune(p, s, limits));
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
