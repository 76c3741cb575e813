/**
 * Register-blocked matmul for linear layers with weights stored `[out, in]` (Hugging Face
 * Llama): forward `C = A·Bᵀ` ("nt"), input gradient `dA = dC·B` ("nn") and weight gradient
 * `dB = dCᵀ·A` ("tn"), with `C = alpha·(A'·B') + beta·C` so gradients can accumulate (tied
 * embeddings). Each invocation owns a `tm x tn` block of C held in scalar registers (fully
 * unrolled: llvmpipe keeps them in vector registers, where a dynamically indexed array would
 * spill); a workgroup covers `(wgy·tm) x (wgx·tn)`. Loads are clamped to the last row/column so
 * the inner loop has no branch; only the stores are guarded, so any shape works.
 */
import { checkBindingSize } from "../device.ts";
import {
  checkDims,
  type Dispatch,
  type Kernel,
  type KernelContext,
  prepare,
  uniforms,
} from "./kernel.ts";

/** Which operands are transposed: `nt` C=A·Bᵀ, `nn` C=A·B, `tn` C=Aᵀ·B (row-major storage). */
export type MatmulTrans = "nt" | "nn" | "tn";

/** Everything baked into a matmul kernel (the autotuner's search space). */
export interface MatmulParams {
  trans: MatmulTrans;
  /** Rows of C per invocation (register block). */
  tm: number;
  /** Columns of C per invocation (register block). */
  tn: number;
  /** Invocations per workgroup along columns. */
  wgx: number;
  /** Invocations per workgroup along rows. */
  wgy: number;
}

/**
 * Default blocking: 8 x 8 per invocation, 8 x 8 invocations (a 64 x 64 tile of C). On llvmpipe
 * (1024x256x256) 1x1 blocks reach 0.13 GFLOP/s, 4x4 0.5-0.9, 8x8 1.6-1.7, 8x16 2.1-2.3: every
 * load is a gather there, so the block size (FMAs per load) is what counts.
 */
export const DEFAULT_MATMUL: Omit<MatmulParams, "trans"> = { tm: 8, tn: 8, wgx: 8, wgy: 8 };

/** Builds the kernel; asserts the blocking fits a workgroup and a sane register budget. */
export function matmulKernel(p: MatmulParams, maxInvocations = 256): Kernel {
  const { tm, tn, wgx, wgy, trans } = p;
  checkDims("matmul", { tm, tn, wgx, wgy });
  if (tm * tn > 128) throw new RangeError(`matmul block ${tm}x${tn} > 128 accumulators per thread`);
  if (wgx * wgy > maxInvocations) {
    throw new RangeError(`matmul workgroup ${wgx}x${wgy} > ${maxInvocations} invocations`);
  }
  // A'[m, k] and B'[k, n] in terms of the stored arrays (uniform sizes M, N, K of the product).
  const aAt = trans === "tn"
    ? (m: string, k: string) => `a[${k} * u.M + ${m}]`
    : (m: string, k: string) => `a[${m} * u.K + ${k}]`;
  const bAt = trans === "nt"
    ? (k: string, n: string) => `b[${n} * u.K + ${k}]`
    : (k: string, n: string) => `b[${k} * u.N + ${n}]`;
  const I = [...Array(tm).keys()], J = [...Array(tn).keys()];
  const lines = (f: (i: number, j: number) => string) =>
    I.flatMap((i) => J.map((j) => f(i, j))).join("\n    ");
  const code = `
struct U { M: u32, N: u32, K: u32, alpha: f32, beta: f32 }
@group(0) @binding(0) var<uniform> u: U;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read_write> c: array<f32>;

@compute @workgroup_size(${wgx}, ${wgy})
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_id) l: vec3u) {
  let m0 = (wg.y * ${wgy}u + l.y) * ${tm}u;
  let n0 = (wg.x * ${wgx}u + l.x) * ${tn}u;
  if (m0 >= u.M || n0 >= u.N) { return; }
  ${I.map((i) => `let r${i} = min(m0 + ${i}u, u.M - 1u);`).join("\n  ")}
  ${J.map((j) => `let c${j} = min(n0 + ${j}u, u.N - 1u);`).join("\n  ")}
  ${lines((i, j) => `var acc${i}_${j} = 0.0;`)}
  for (var k = 0u; k < u.K; k++) {
    ${I.map((i) => `let a${i} = ${aAt(`r${i}`, "k")};`).join("\n    ")}
    ${J.map((j) => `let b${j} = ${bAt("k", `c${j}`)};`).join("\n    ")}
    ${lines((i, j) => `acc${i}_${j} = fma(a${i}, b${j}, acc${i}_${j});`)}
  }
  ${
    lines((i, j) =>
      `if (m0 + ${i}u < u.M && n0 + ${j}u < u.N) { store((m0 + ${i}u) * u.N + n0 + ${j}u, acc${i}_${j}); }`
    )
  }
}

fn store(idx: u32, v: f32) {
  // beta == 0 never reads C, so stale NaNs in a reused buffer cannot leak in.
  if (u.beta == 0.0) { c[idx] = u.alpha * v; } else { c[idx] = u.alpha * v + u.beta * c[idx]; }
}`;
  const key = `matmul:${trans}:tm${tm}:tn${tn}:wg${wgx}x${wgy}`;
  return { key, label: key, code, bindings: ["u", "a", "b", "c"] };
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
  K: number;
  trans: MatmulTrans;
  /** Scale of the product. Default 1. */
  alpha?: number;
  /** Scale of the old C (1 accumulates). Default 0: C is overwritten, never read. */
  beta?: number;
  /** Blocking. Default `DEFAULT_MATMUL`. */
  params?: Omit<MatmulParams, "trans">;
}

/**
 * Prepares one product. With "nt": a is (M,K), b is (N,K) [out, in], c is (M,N).
 * "nn": a is (M,K), b is (K,N), c is (M,N). "tn": a is (K,M), b is (K,N), c is (M,N).
 * So for y = x·Wᵀ with x (R,in), W (out,in): forward nt(x, W) -> (R,out); dx = nn(dy, W) ->
 * (R,in); dW = tn(dy, x) -> (out,in).
 */
export function matmul(ctx: KernelContext, call: MatmulCall): Dispatch {
  const { M, N, K, trans } = call;
  checkDims("matmul", { M, N, K });
  const p = { ...DEFAULT_MATMUL, ...call.params, trans };
  const kernel = matmulKernel(p, ctx.gpu.device.limits.maxComputeInvocationsPerWorkgroup);
  const sizes = { a: M * K, b: N * K, c: M * N };
  for (const [name, n] of Object.entries(sizes)) {
    checkBindingSize(ctx.gpu, n * 4, `matmul ${name} (${n} f32)`);
    const buf = call[name as "a" | "b" | "c"];
    if (buf.size < n * 4) {
      throw new RangeError(`matmul ${trans}: ${name} holds ${buf.size} bytes, needs ${n * 4}`);
    }
  }
  const u = uniforms(ctx, [
    { u32: M },
    { u32: N },
    { u32: K },
    { f32: call.alpha ?? 1 },
    { f32: call.beta ?? 0 },
  ], kernel.label);
  return prepare(ctx, kernel, {
    buffers: { u, a: call.a, b: call.b, c: call.c },
    grid: [Math.ceil(N / (p.wgx * p.tn)), Math.ceil(M / (p.wgy * p.tm)), 1],
    owned: [u],
  });
}
