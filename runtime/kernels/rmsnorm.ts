/**
 * RMSNorm (Llama): `y = x · rstd · w`, `rstd = 1/sqrt(mean(x²) + eps)`, forward and backward.
 * One invocation per row (rows are short, C = hidden size: a serial loop beats a workgroup
 * reduction's barriers on llvmpipe). The weight gradient is a column reduction over rows, one
 * invocation per column in a fixed order: deterministic, no atomics. Browser-safe.
 */
import {
  type Dispatch,
  dispatchKernel,
  type Kernel,
  type KernelContext,
  makeKernel,
} from "../gpu/kernel.ts";

const U = { u: "rows: u32, cols: u32, eps: f32, accumulate: u32" };

/** The three kernels: forward (y, rstd), input gradient, weight gradient (one row or column each). */
function rmsnormKernels() {
  const forward = makeKernel({
    key: "rmsnorm_forward",
    uniforms: U,
    reads: { x: "f32", w: "f32" },
    writes: { y: "f32", rstd: "f32" },
    main: {
      count: "u.rows",
      body: `
  let base = i * u.cols;
  var ss = 0.0;
  for (var c = 0u; c < u.cols; c++) { let v = x[base + c]; ss = fma(v, v, ss); }
  let r = inverseSqrt(ss / f32(u.cols) + u.eps);
  rstd[i] = r;
  for (var c = 0u; c < u.cols; c++) { y[base + c] = x[base + c] * r * w[c]; }`,
    },
  });
  // dx = rstd·(dy·w) - x·rstd³·mean(dy·w·x)
  const dx = makeKernel({
    key: "rmsnorm_dx",
    uniforms: U,
    reads: { dy: "f32", x: "f32", w: "f32", rstd: "f32" },
    writes: { dx: "f32" },
    main: {
      count: "u.rows",
      body: `
  let base = i * u.cols;
  let r = rstd[i];
  var dot = 0.0;
  for (var c = 0u; c < u.cols; c++) { dot = fma(dy[base + c] * w[c], x[base + c], dot); }
  let k = r * r * r * dot / f32(u.cols);
  for (var c = 0u; c < u.cols; c++) {
    var g = r * dy[base + c] * w[c] - k * x[base + c];
    if (u.accumulate != 0u) { g += dx[base + c]; }
    dx[base + c] = g;
  }`,
    },
  });
  const dw = makeKernel({
    key: "rmsnorm_dw",
    uniforms: U,
    reads: { dy: "f32", x: "f32", rstd: "f32" },
    writes: { dw: "f32" },
    main: {
      count: "u.cols",
      body: `
  var acc = 0.0;
  for (var r = 0u; r < u.rows; r++) { acc = fma(dy[r * u.cols + i] * x[r * u.cols + i], rstd[r], acc); }
  if (u.accumulate != 0u) { acc += dw[i]; }
  dw[i] = acc;`,
    },
  });
  return { forward, dx, dw };
}

/** Shape of an RMSNorm call. */
export interface RmsNormShape {
  rows: number;
  cols: number;
  /** Default 1e-5. */
  eps?: number;
}

/** One dispatch of an RMSNorm kernel over `items` rows (forward, dx) or columns (dw). */
function rmsDispatch(
  ctx: KernelContext,
  k: Kernel,
  buffers: Record<string, GPUBuffer>,
  s: RmsNormShape,
  o: { accumulate: boolean; items: number },
): Dispatch {
  return dispatchKernel(ctx, k, {
    dims: { rows: s.rows, cols: s.cols },
    u: [{ u32: s.rows }, { u32: s.cols }, { f32: s.eps ?? 1e-5 }, { u32: o.accumulate ? 1 : 0 }],
    buffers,
    grid: o.items,
  });
}

/** x is (R, C), w is (C,), y is (R, C), rstd is (R,) (saved for the backward). */
export function rmsnormForward(
  ctx: KernelContext,
  io: { x: GPUBuffer; w: GPUBuffer; y: GPUBuffer; rstd: GPUBuffer },
  shape: RmsNormShape,
): Dispatch {
  const k = rmsnormKernels().forward;
  return rmsDispatch(ctx, k, io, shape, { accumulate: false, items: shape.rows });
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
  return [
    rmsDispatch(ctx, ks.dx, io, shape, {
      accumulate: shape.accumulateDx ?? false,
      items: shape.rows,
    }),
    rmsDispatch(ctx, ks.dw, io, shape, {
      accumulate: shape.accumulateDw ?? false,
      items: shape.cols,
    }),
  ];
}
