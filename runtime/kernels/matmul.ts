/**
 * Register-blocked matmul for linear layers with weights stored `[out, in]` (Hugging Face
 * Llama): forward `C = A·Bᵀ` ("nt"), input gradient `dA = dC·B` ("nn") and weight gradient
 * `dB = dCᵀ·A` ("tn"), with `C = alpha·(A'·B') + beta·C` so gradients can accumulate (tied
 * embeddings). A product is `(M x inner)·(inner x N)`: the reduction length is `inner`, never
 * `K`, which is the PHD copy count everywhere else (split-K keeps its usual name). Each
 * invocation owns a `tm x tn` block of C held in scalar registers (fully unrolled: llvmpipe keeps
 * them in vector registers, where a dynamically indexed array would spill); a workgroup covers
 * `(wgy·tm) x (wgx·tn)`. Loads are clamped to the last row/column so the inner loop has no
 * branch; only the stores are guarded, so any shape works. This file holds the parameters, their
 * checks and the dispatch; runtime/kernels/matmul_wgsl.ts writes the WGSL.
 *
 * The variant space (the autotuner's, runtime/tune/matmul.ts `matmulCandidates`), every knob
 * baked into the WGSL and named in the kernel key:
 * - `tm x tn` register block and `wgx x wgy` workgroup shape;
 * - `vec: 4`: vec4 loads along each operand's contiguous dimension (nt: both along inner; nn: A
 *   along inner, B along N; tn: A along M, B along N), when those dimensions are multiples of 4;
 * - `bk`: stage `bk`-deep slices of the inner dimension of the A and B tiles through workgroup
 *   memory (0: read global memory directly, the cpu default: on llvmpipe every load is a gather
 *   either way), with `vec: 4` loaded into it as vec4s (the gpu default);
 * - `kz`: split the inner dimension inside a workgroup across `kz` invocations along z, reduced
 *   through workgroup memory (one dispatch);
 * - `splitK`: split the inner dimension across workgroups into a scratch buffer, then a reduction
 *   pass (two dispatches: use `matmulDispatches`, which also takes every other variant).
 * - `f16` (not tuned; `shader-f16`): operands rounded to f16 as they are loaded (staged tiles are
 *   f16 too), products in f16 and sums in f32 (`products`), or sums in f16 too (`accumulate`): a
 *   forward/inference knob, never chosen by the tuner, whose check holds variants to f32 error.
 * Storage stays f32 (the model's tensors are f32, see docs/INTERNALS.md, Autotuning).
 *
 * The default blocking follows the adapter class (`defaultMatmul`, runtime/gpu/device.ts
 * `AdapterClass`): llvmpipe's `DEFAULT_MATMUL` on a CPU rasterizer, 64-256 invocations with staged
 * vec4 tiles (`GPU_MATMUL`) on a GPU.
 *
 * A model takes its blocking per product from a `MatmulChooser`; the autotuner's
 * (`tunedMatmulChooser`, runtime/tune/matmul.ts) returns the tuned variant of the shape's bucket
 * when the cache has one that is valid for the exact shape, else undefined (the default). Tuned
 * parameters never have `splitK > 1` unless the chooser is asked for them (`allowSplitK`), so
 * `matmul(ctx, call)` (one dispatch) accepts everything it returns.
 */
import {
  type AdapterClass,
  checkBindingSize,
  type DeviceLimits,
  gpuLimits,
  WEBGPU_DEFAULT_LIMITS,
} from "../gpu/device.ts";
import {
  checkDims,
  type Dispatch,
  dispatchKernel,
  type Kernel,
  type KernelContext,
  makeKernel,
  prepare,
  uniforms,
} from "../gpu/kernel.ts";
import { type FullMatmulParams, matmulWgsl } from "./matmul_wgsl.ts";

/** Which operands are transposed: `nt` C=A·Bᵀ, `nn` C=A·B, `tn` C=Aᵀ·B (row-major storage). */
export type MatmulTrans = "nt" | "nn" | "tn";

/** Everything baked into a matmul kernel (the autotuner's search space). */
export interface MatmulParams {
  /** Which operands are read transposed. */
  trans: MatmulTrans;
  /** Rows of C per invocation (register block). */
  tm: number;
  /** Columns of C per invocation (register block). */
  tn: number;
  /** Invocations per workgroup along columns. */
  wgx: number;
  /** Invocations per workgroup along rows. */
  wgy: number;
  /** Load width: 1 (scalar, default) or 4 (vec4 along each operand's contiguous dimension). */
  vec?: 1 | 4;
  /** Depth of the inner slices staged through workgroup memory; 0 (default) reads global memory. */
  bk?: number;
  /** Invocations along z splitting the inner dimension inside a workgroup (default 1). */
  kz?: number;
  /**
   * Workgroups along z splitting the inner dimension, reduced by a second pass (default 1;
   * `matmulDispatches`).
   */
  splitK?: number;
  /**
   * f16 arithmetic (needs `shader-f16`; combines with neither `kz` nor `splitK`): `products`
   * rounds operands and products to f16 and sums in f32, `accumulate` sums in f16 too. Default
   * unset: f32 throughout.
   */
  f16?: MatmulF16;
}

/** The f16 arithmetic of a matmul: f16 products with f32 sums, or everything in f16. */
export type MatmulF16 = "products" | "accumulate";

/** The blocking part of the parameters (what a caller or the tuner passes per call). */
export type MatmulBlocking = Omit<MatmulParams, "trans">;

/**
 * Default blocking: 8 x 8 per invocation, 8 x 8 invocations (a 64 x 64 tile of C). On llvmpipe
 * (1024x256x256) 1x1 blocks reach 0.13 GFLOP/s, 4x4 0.5-0.9, 8x8 1.6-1.7, 8x16 2.1-2.3: every
 * load is a gather there, so the block size (FMAs per load) is what counts.
 */
export const DEFAULT_MATMUL: MatmulBlocking = { tm: 8, tn: 8, wgx: 8, wgy: 8 };

/**
 * The gpu class's defaults in order of preference, the first that fits a shape and the device
 * being used: 4 x 4 per invocation in 16 x 16 invocations (a 64 x 64 tile of C, 256 invocations),
 * 8-deep inner slices of A and B staged through 4 KiB of workgroup memory, in vec4s when the shape
 * allows; 8 x 8 invocations (64, every device's least) where 256 do not fit. 8 rather than 16
 * deep: llvmpipe's GL backend compiles a staged kernel in time proportional to the slice depth
 * (10-40 s at 16), and the tests run these defaults there.
 */
export const GPU_MATMUL: readonly MatmulBlocking[] = [
  { tm: 4, tn: 4, wgx: 16, wgy: 16, vec: 4, bk: 8 },
  { tm: 4, tn: 4, wgx: 16, wgy: 16, bk: 8 },
  { tm: 4, tn: 4, wgx: 8, wgy: 8, vec: 4, bk: 8 },
  { tm: 4, tn: 4, wgx: 8, wgy: 8, bk: 8 },
];

/** Accumulators one invocation may hold (registers). */
const MAX_ACCUMULATORS = 256;

/**
 * Limits a matmul variant must respect (`gpuLimits` of runtime/gpu/device.ts has them), and the
 * device's loop budget when it has one (`matmulLoopProblem`).
 */
export type MatmulLimits =
  & Pick<
    DeviceLimits,
    | "maxComputeInvocationsPerWorkgroup"
    | "maxComputeWorkgroupSizeX"
    | "maxComputeWorkgroupSizeY"
    | "maxComputeWorkgroupSizeZ"
    | "maxComputeWorkgroupStorageSize"
  >
  & { loopBudget?: number };

/** The shape of one product: C (M, N) = A' (M, inner) · B' (inner, N). */
export interface MatmulShape {
  /** Which operands are transposed (A' = Aᵀ for `tn`, B' = Bᵀ for `nt`). */
  trans: MatmulTrans;
  /** Rows of C. */
  M: number;
  /** Columns of C. */
  N: number;
  /** Reduction length. */
  inner: number;
}

/**
 * Matmul blocking chosen per product (a model's `GraphOptions.matmul`, the autotuner's
 * `tunedMatmulChooser`); undefined keeps the default.
 */
export type MatmulChooser = (shape: MatmulShape) => MatmulBlocking | undefined;

/**
 * The default blocking of a product on an adapter class: `DEFAULT_MATMUL` for `cpu`; for `gpu`
 * the first of `GPU_MATMUL` that fits the shape (vec4 divisibility) and `limits` (default:
 * WebGPU's guaranteed ones, which the last always fits).
 */
export function defaultMatmul(
  adapterClass: AdapterClass,
  shape: MatmulShape,
  limits: MatmulLimits = WEBGPU_DEFAULT_LIMITS,
): MatmulBlocking {
  if (adapterClass === "cpu") return DEFAULT_MATMUL;
  return GPU_MATMUL.find((p) => {
    const q = { ...p, trans: shape.trans };
    return !matmulShapeProblem(q, shape) && !matmulLimitsProblem(q, limits);
  }) ?? GPU_MATMUL[GPU_MATMUL.length - 1];
}

/**
 * The blocking of a product of at most two rows (a batch-1 decode step's linear layers and head):
 * a block of one or two rows per invocation, where the default's 64-row tile computes clamped
 * copies of the row (1.5x slower per token on llvmpipe). `cpu`: 8 columns per invocation in one
 * SIMD row of 32 invocations. `gpu`: one column per invocation, both rows in registers, vec4 loads
 * along the reduction where the shape allows, in a row of 64 to 256 invocations (as many as N
 * needs, within the device's `limits`, default WebGPU's).
 */
export function decodeMatmul(
  adapterClass: AdapterClass,
  shape: MatmulShape,
  limits: MatmulLimits = WEBGPU_DEFAULT_LIMITS,
): MatmulBlocking {
  if (shape.M > 2) throw new RangeError(`decodeMatmul: M = ${shape.M}, at most 2`);
  if (adapterClass === "cpu") return { tm: 1, tn: 8, wgx: 32, wgy: 1 };
  const most = Math.min(
    256,
    limits.maxComputeInvocationsPerWorkgroup,
    limits.maxComputeWorkgroupSizeX,
  );
  const want = Math.max(64, Math.min(most, 2 ** Math.ceil(Math.log2(shape.N))));
  const p: MatmulBlocking = { tm: shape.M, tn: 1, wgx: 2 ** Math.floor(Math.log2(want)), wgy: 1 };
  return matmulShapeProblem({ ...p, vec: 4, trans: shape.trans }, shape) ? p : { ...p, vec: 4 };
}

/** Normalised parameters (every optional knob filled in; `f16` stays optional). */
function full(p: MatmulParams): FullMatmulParams {
  return { vec: 1, bk: 0, kz: 1, splitK: 1, ...p };
}

/** Bytes of workgroup memory a variant declares. */
function matmulWorkgroupBytes(p: MatmulParams): number {
  const q = full(p);
  const staged = q.bk > 0 ? (q.wgy * q.tm + q.wgx * q.tn) * q.bk * (q.f16 ? 2 : 4) : 0;
  const reduce = q.kz > 1 ? (q.kz - 1) * q.wgx * q.wgy * q.tm * q.tn * 4 : 0;
  return staged + reduce;
}

/**
 * Why a variant cannot be built or run on an adapter (its limits), or undefined. Checked before
 * any WGSL is compiled: the tuner prunes with it and `matmulKernel` refuses with it.
 */
export function matmulLimitsProblem(p: MatmulParams, limits: MatmulLimits): string | undefined {
  const q = full(p);
  const inv = q.wgx * q.wgy * q.kz;
  if (q.tm * q.tn > MAX_ACCUMULATORS) {
    return `block ${q.tm}x${q.tn} > ${MAX_ACCUMULATORS} accumulators per invocation`;
  }
  if (inv > limits.maxComputeInvocationsPerWorkgroup) {
    return `workgroup ${q.wgx}x${q.wgy}x${q.kz} > ${limits.maxComputeInvocationsPerWorkgroup} invocations`;
  }
  if (q.wgx > limits.maxComputeWorkgroupSizeX) return `wgx ${q.wgx} > maxComputeWorkgroupSizeX`;
  if (q.wgy > limits.maxComputeWorkgroupSizeY) return `wgy ${q.wgy} > maxComputeWorkgroupSizeY`;
  if (q.kz > limits.maxComputeWorkgroupSizeZ) return `kz ${q.kz} > maxComputeWorkgroupSizeZ`;
  const bytes = matmulWorkgroupBytes(q);
  if (bytes > limits.maxComputeWorkgroupStorageSize) {
    return `needs ${bytes} bytes of workgroup memory, adapter has ${limits.maxComputeWorkgroupStorageSize}`;
  }
  return undefined;
}

/** Why a variant does not fit a shape (vec4 divisibility), or undefined. */
export function matmulShapeProblem(p: MatmulParams, s: MatmulShape): string | undefined {
  const q = full(p);
  if (q.vec !== 1 && q.vec !== 4) return `vec must be 1 or 4, got ${q.vec}`;
  if (q.vec === 4) {
    const need: [string, number][] = s.trans === "nt"
      ? [["inner", s.inner]]
      : s.trans === "nn"
      ? [["inner", s.inner], ["N", s.N], ["tn", q.tn]]
      : [["M", s.M], ["N", s.N], ["tm", q.tm], ["tn", q.tn]];
    const bad = need.filter(([, v]) => v % 4 !== 0).map(([k, v]) => `${k}=${v}`);
    if (bad.length) return `vec4 ${s.trans} needs multiples of 4 (${bad.join(", ")})`;
  }
  return undefined;
}

/**
 * The most loop passes one invocation of a variant makes on a shape: every iteration plus each
 * loop's exit test, as Mesa's loop limiter counts them (runtime/gpu/device.ts
 * `GpuContext.loopBudget`). The loop runs over the invocation's share of the reduction (split by
 * `splitK` and `kz`), one pass per step of 1 or 4 (vec4) inner values, or per staged slice of `bk`
 * its two load loops and its loop over the slice; the register block is straight-line code.
 */
export function matmulLoopPasses(p: MatmulParams, s: MatmulShape): number {
  const q = full(p), loop = (n: number) => n + 1;
  const kv = q.vec === 4 && q.trans !== "tn" ? 4 : 1;
  const share = Math.ceil(Math.ceil(Math.ceil(s.inner / q.splitK) / kv) * kv / q.kz);
  const reduce = q.kz > 1 ? loop(q.kz - 1) : 0;
  if (q.bk === 0) return loop(Math.ceil(share / kv)) + reduce;
  const v = q.vec === 4 ? 4 : 1, NT = q.wgx * q.wgy, slices = Math.ceil(share / q.bk);
  const slice = loop(Math.ceil((q.wgy * q.tm * q.bk) / v / NT)) +
    loop(Math.ceil((q.bk * q.wgx * q.tn) / v / NT)) + loop(Math.ceil(q.bk / kv));
  return loop(slices) + slices * slice;
}

/**
 * Why a variant would take a shape past a device's loop budget (undefined: no budget, or within
 * it). Past it the driver ends the loop early without an error, leaving out the rest of the sum.
 */
export function matmulLoopProblem(
  p: MatmulParams,
  s: MatmulShape,
  budget: number | undefined,
): string | undefined {
  const n = matmulLoopPasses(p, s);
  if (budget === undefined || n < budget) return undefined;
  return `inner = ${s.inner} takes up to ${n} loop passes per invocation, past this adapter's ` +
    `loop budget ${budget}`;
}

/** The kernel key (and label) of a variant; the default blocking keeps its historic key. */
export function matmulKey(p: MatmulParams): string {
  const q = full(p);
  return `matmul:${q.trans}:tm${q.tm}:tn${q.tn}:wg${q.wgx}x${q.wgy}` +
    (q.vec !== 1 ? `:v${q.vec}` : "") + (q.bk ? `:bk${q.bk}` : "") +
    (q.kz > 1 ? `:kz${q.kz}` : "") + (q.splitK > 1 ? `:sk` : "") +
    (q.f16 ? `:f16${q.f16[0]}` : "");
}

/** A short human name of a blocking, e.g. `8x16 wg8x1 v4 kz4`. */
export function matmulVariantName(p: MatmulBlocking): string {
  const q = full({ trans: "nt", ...p });
  return `${q.tm}x${q.tn} wg${q.wgx}x${q.wgy}` + (q.vec === 4 ? " v4" : "") +
    (q.bk ? ` bk${q.bk}` : "") + (q.kz > 1 ? ` kz${q.kz}` : "") +
    (q.splitK > 1 ? ` sk${q.splitK}` : "") + (q.f16 ? ` f16${q.f16[0]}` : "");
}

/**
 * Builds the kernel; refuses (RangeError) a variant that breaks `limits` (default: WebGPU's
 * guaranteed ones). With `splitK > 1` the kernel writes raw partial products to a scratch buffer
 * `p` (slice `wg.z` of `splitK`), reduced by `matmulReduceKernel`.
 */
export function matmulKernel(
  p: MatmulParams,
  limits: MatmulLimits = WEBGPU_DEFAULT_LIMITS,
): Kernel {
  const q = full(p);
  const { tm, tn, wgx, wgy, trans, vec, bk, kz, splitK } = q;
  checkDims("matmul", { tm, tn, wgx, wgy, kz, splitK });
  if (!Number.isInteger(bk) || bk < 0) throw new RangeError(`matmul: bk must be >= 0, got ${bk}`);
  if (vec !== 1 && vec !== 4) throw new RangeError(`matmul: vec must be 1 or 4, got ${vec}`);
  if (vec === 4 && trans === "nn" && tn % 4) throw new RangeError(`matmul nn vec4: tn % 4 != 0`);
  if (vec === 4 && trans === "tn" && (tm % 4 || tn % 4)) {
    throw new RangeError(`matmul tn vec4: tm and tn must be multiples of 4`);
  }
  if (bk > 0 && kz > 1) throw new RangeError(`matmul: workgroup staging (bk) excludes kz`);
  if (bk > 0 && vec === 4 && bk % 4) {
    throw new RangeError(`matmul: vec4 loads into staged tiles need bk % 4 == 0, got ${bk}`);
  }
  const f16 = q.f16;
  if (f16 !== undefined && f16 !== "products" && f16 !== "accumulate") {
    throw new RangeError(`matmul: f16 must be "products" or "accumulate", got ${f16}`);
  }
  if (f16 && (kz > 1 || splitK > 1)) {
    throw new RangeError(`matmul: f16 arithmetic combines with neither kz nor splitK`);
  }
  const problem = matmulLimitsProblem(q, limits);
  if (problem) throw new RangeError(`matmul ${matmulKey(q)}: ${problem}`);

  const w = matmulWgsl(q);
  return makeKernel({
    key: matmulKey(q),
    enable: f16 ? ["f16"] : undefined,
    uniforms: { u: "M: u32, N: u32, inner: u32, alpha: f32, beta: f32, slice: u32" },
    reads: { a: w.type, b: w.type },
    writes: splitK > 1 ? { p: "f32" } : { c: "f32" },
    helpers: `${w.decls}${
      splitK > 1 ? "" : `
fn store(idx: u32, v: f32) {
  // beta == 0 never reads C, so stale NaNs in a reused buffer cannot leak in.
  if (u.beta == 0.0) { c[idx] = u.alpha * v; } else { c[idx] = u.alpha * v + u.beta * c[idx]; }
}`
    }`,
    main: `
@compute @workgroup_size(${wgx}, ${wgy}, ${kz})
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_id) l: vec3u) {
  let m0 = ${wgy === 1 ? "wg.y" : `(wg.y * ${wgy}u + l.y)`} * ${tm}u;
  let n0 = ${wgx === 1 ? "wg.x" : `(wg.x * ${wgx}u + l.x)`} * ${tn}u;
  ${w.body}
}`,
  });
}

/** Sums the `S` partial products of a split-K matmul into C with alpha/beta (one item each). */
export function matmulReduceKernel(): Kernel {
  return makeKernel({
    key: "matmul:splitk-reduce",
    uniforms: { u: "MN: u32, S: u32, alpha: f32, beta: f32" },
    reads: { p: "f32" },
    writes: { c: "f32" },
    main: {
      count: "u.MN",
      body: `
  var s = 0.0;
  for (var z = 0u; z < u.S; z++) { s += p[z * u.MN + i]; }
  if (u.beta == 0.0) { c[i] = u.alpha * s; } else { c[i] = u.alpha * s + u.beta * c[i]; }`,
    },
  });
}

/** Buffers and shape of one product. */
export interface MatmulCall {
  a: GPUBuffer;
  b: GPUBuffer;
  c: GPUBuffer;
  /** Rows of C. */
  M: number;
  /** Columns of C. */
  N: number;
  /** Reduction length. */
  inner: number;
  trans: MatmulTrans;
  /** Scale of the product. Default 1. */
  alpha?: number;
  /** Scale of the old C (1 accumulates). Default 0: C is overwritten, never read. */
  beta?: number;
  /** Blocking and variant. Default `defaultMatmul` of the context's adapter class. */
  params?: MatmulBlocking;
}

/**
 * Prepares one product. With "nt": a is (M,inner), b is (N,inner) [out, in], c is (M,N).
 * "nn": a is (M,inner), b is (inner,N), c is (M,N). "tn": a is (inner,M), b is (inner,N), c is
 * (M,N).
 * So for y = x·Wᵀ with x (R,in), W (out,in): forward nt(x, W) -> (R,out); dx = nn(dy, W) ->
 * (R,in); dW = tn(dy, x) -> (out,in). Refuses `splitK > 1` (two passes: `matmulDispatches`).
 */
export function matmul(ctx: KernelContext, call: MatmulCall): Dispatch {
  if ((call.params?.splitK ?? 1) > 1) {
    throw new RangeError(
      `matmul: splitK ${call.params?.splitK} needs two dispatches: use matmulDispatches`,
    );
  }
  return matmulDispatches(ctx, call)[0];
}

/** Prepares one product as one dispatch, or two with `splitK > 1` (the first owns the scratch). */
export function matmulDispatches(ctx: KernelContext, call: MatmulCall): Dispatch[] {
  const { M, N, inner, trans } = call;
  checkDims("matmul", { M, N, inner });
  const limits = gpuLimits(ctx.gpu);
  const p = full({ ...(call.params ?? defaultMatmul(ctx.gpu.adapterClass, call, limits)), trans });
  const shapeProblem = matmulShapeProblem(p, call);
  if (shapeProblem) throw new RangeError(`matmul ${M}x${N}x${inner}: ${shapeProblem}`);
  const loops = matmulLoopProblem(p, call, limits.loopBudget);
  if (loops) {
    throw new RangeError(
      `matmul ${trans} ${M}x${N}x${inner} ${matmulVariantName(p)} on adapter ` +
        `"${ctx.gpu.adapterName}": ${loops} (it would end the loop early and leave out part of ` +
        `the sum): use fewer tokens per step, or a variant with splitK or kz`,
    );
  }
  if (p.f16 && !ctx.gpu.f16) {
    throw new Error(
      `matmul f16 arithmetic needs the shader-f16 feature, which adapter "${ctx.gpu.adapterName}" ` +
        `lacks: leave f16 unset, or use a Vulkan driver (DENO_WEBGPU_BACKEND=vulkan)`,
    );
  }
  const kernel = matmulKernel(p, limits);
  const sizes = { a: M * inner, b: N * inner, c: M * N };
  for (const [name, n] of Object.entries(sizes)) {
    checkBindingSize(ctx.gpu, n * 4, `matmul ${name} (${n} f32)`);
    const buf = call[name as "a" | "b" | "c"];
    if (buf.size < n * 4) {
      throw new RangeError(`matmul ${trans}: ${name} holds ${buf.size} bytes, needs ${n * 4}`);
    }
  }
  const S = p.splitK, alpha = call.alpha ?? 1, beta = call.beta ?? 0;
  const u = uniforms(ctx, [
    { u32: M },
    { u32: N },
    { u32: inner },
    { f32: alpha },
    { f32: beta },
    { u32: Math.ceil(inner / S) },
  ], kernel.label);
  const grid: [number, number, number] = [
    Math.ceil(N / (p.wgx * p.tn)),
    Math.ceil(M / (p.wgy * p.tm)),
    S,
  ];
  if (S === 1) {
    return [
      prepare(ctx, kernel, { buffers: { u, a: call.a, b: call.b, c: call.c }, grid, owned: [u] }),
    ];
  }
  checkBindingSize(ctx.gpu, S * M * N * 4, `matmul split-K scratch (${S} x ${M} x ${N} f32)`);
  const scratch = ctx.gpu.device.createBuffer({
    label: `${kernel.label} scratch`,
    size: Math.max(16, S * M * N * 4),
    usage: GPUBufferUsage.STORAGE,
  });
  const partial = prepare(ctx, kernel, {
    buffers: { u, a: call.a, b: call.b, p: scratch },
    grid,
    owned: [u, scratch],
  });
  const reduce = dispatchKernel(ctx, matmulReduceKernel(), {
    u: [{ u32: M * N }, { u32: S }, { f32: alpha }, { f32: beta }],
    buffers: { p: scratch, c: call.c },
    grid: M * N,
  });
  return [partial, reduce];
}
