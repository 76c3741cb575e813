/**
 * RMSNorm (Llama): `y = x · rstd · w`, `rstd = 1/sqrt(mean(x²) + eps)`, forward and backward.
 * One invocation per row (rows are short, C = hidden size: a serial loop beats a workgroup
 * reduction's barriers on llvmpipe). The weight gradient is a column reduction over rows, one
 * invocation per column in a fixed order: deterministic, no atomics. Browser-safe.
 */
import {
  checkDims,
  type Dispatch,
  grid1d,
  type Kernel,
  type KernelContext,
  LINEAR_INDEX_WGSL,
  prepare,
  uniforms,
} from "../gpu/kernel.ts";

const WG = 64;
const HEAD = `
struct U { rows: u32, cols: u32, eps: f32, accumulate: u32 }
@group(0) @binding(0) var<uniform> u: U;
${LINEAR_INDEX_WGSL}`;
const ENTRY = `@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u,
        @builtin(local_invocation_index) l: u32) {
  let i = linear_index(wg, nwg, l, ${WG}u);`;

/** The three kernels: forward (y, rstd), input gradient, weight gradient. */
export function rmsnormKernels(): { forward: Kernel; dx: Kernel; dw: Kernel } {
  const forward = `${HEAD}
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> w: array<f32>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;
@group(0) @binding(4) var<storage, read_write> rstd: array<f32>;
${ENTRY}
  if (i >= u.rows) { return; }
  let base = i * u.cols;
  var ss = 0.0;
  for (var c = 0u; c < u.cols; c++) { let v = x[base + c]; ss = fma(v, v, ss); }
  let r = inverseSqrt(ss / f32(u.cols) + u.eps);
  rstd[i] = r;
  for (var c = 0u; c < u.cols; c++) { y[base + c] = x[base + c] * r * w[c]; }
}`;
  // dx = rstd·(dy·w) - x·rstd³·mean(dy·w·x)
  const dx = `${HEAD}
@group(0) @binding(1) var<storage, read> dy: array<f32>;
@group(0) @binding(2) var<storage, read> x: array<f32>;
@group(0) @binding(3) var<storage, read> w: array<f32>;
@group(0) @binding(4) var<storage, read> rstd: array<f32>;
@group(0) @binding(5) var<storage, read_write> dx: array<f32>;
${ENTRY}
  if (i >= u.rows) { return; }
  let base = i * u.cols;
  let r = rstd[i];
  var dot = 0.0;
  for (var c = 0u; c < u.cols; c++) { dot = fma(dy[base + c] * w[c], x[base + c], dot); }
  let k = r * r * r * dot / f32(u.cols);
  for (var c = 0u; c < u.cols; c++) {
    var g = r * dy[base + c] * w[c] - k * x[base + c];
    if (u.accumulate != 0u) { g += dx[base + c]; }
    dx[base + c] = g;
  }
}`;
  const dw = `${HEAD}
@group(0) @binding(1) var<storage, read> dy: array<f32>;
@group(0) @binding(2) var<storage, read> x: array<f32>;
@group(0) @binding(3) var<storage, read> rstd: array<f32>;
@group(0) @binding(4) var<storage, read_write> dw: array<f32>;
${ENTRY}
  if (i >= u.cols) { return; }
  var acc = 0.0;
  for (var r = 0u; r < u.rows; r++) { acc = fma(dy[r * u.cols + i] * x[r * u.cols + i], rstd[r], acc); }
  if (u.accumulate != 0u) { acc += dw[i]; }
  dw[i] = acc;
}`;
  return {
    forward: {
      key: "rmsnorm_forward",
      label: "rmsnorm_forward",
      code: forward,
      bindings: ["u", "x", "w", "y", "rstd"],
    },
    dx: {
      key: "rmsnorm_dx",
      label: "rmsnorm_dx",
      code: dx,
      bindings: ["u", "dy", "x", "w", "rstd", "dx"],
    },
    dw: {
      key: "rmsnorm_dw",
      label: "rmsnorm_dw",
      code: dw,
      bindings: ["u", "dy", "x", "rstd", "dw"],
    },
  };
}

/** Shape of an RMSNorm call. */
export interface RmsNormShape {
  rows: number;
  cols: number;
  /** Default 1e-5. */
  eps?: number;
}

function rmsUniforms(ctx: KernelContext, s: RmsNormShape, accumulate: boolean, label: string) {
  checkDims(label, { rows: s.rows, cols: s.cols });
  return uniforms(ctx, [
    { u32: s.rows },
    { u32: s.cols },
    { f32: s.eps ?? 1e-5 },
    { u32: accumulate ? 1 : 0 },
  ], label);
}

/** x is (R, C), w is (C,), y is (R, C), rstd is (R,) (saved for the backward). */
export function rmsnormForward(
  ctx: KernelContext,
  io: { x: GPUBuffer; w: GPUBuffer; y: GPUBuffer; rstd: GPUBuffer },
  shape: RmsNormShape,
): Dispatch {
  const k = rmsnormKernels().forward, u = rmsUniforms(ctx, shape, false, k.label);
  return prepare(ctx, k, { buffers: { u, ...io }, grid: grid1d(shape.rows, WG), owned: [u] });
}

/**
 * dy and x are (R, C), w is (C,), rstd is (R,); dx is (R, C) and dw is (C,). `accumulateDx` adds
 * to dx (the residual stream's gradient), `accumulateDw` adds to dw. Two dispatches: dx, dw.
 */
export function rmsnormBackward(
  ctx: KernelContext,
  io: {
    dy: GPUBuffer;
    x: GPUBuffer;
    w: GPUBuffer;
    rstd: GPUBuffer;
    dx: GPUBuffer;
    dw: GPUBuffer;
  },
  shape: RmsNormShape & { accumulateDx?: boolean; accumulateDw?: boolean },
): Dispatch[] {
  const ks = rmsnormKernels();
  const ux = rmsUniforms(ctx, shape, shape.accumulateDx ?? false, ks.dx.label);
  const uw = rmsUniforms(ctx, shape, shape.accumulateDw ?? false, ks.dw.label);
  return [
    prepare(ctx, ks.dx, { buffers: { u: ux, ...io }, grid: grid1d(shape.rows, WG), owned: [ux] }),
    prepare(ctx, ks.dw, { buffers: { u: uw, ...io }, grid: grid1d(shape.cols, WG), owned: [uw] }),
  ];
}
