/**
 * RMSNorm (Llama): `y = x · rstd · w`, `rstd = 1/sqrt(mean(x²) + eps)`, forward and backward.
 * One invocation per row (rows are short, C = hidden size: a serial loop beats a workgroup
 * reduction's barriers on llvmpipe). On a gpu-class adapter with the `subgroups` feature the
 * forward and input-gradient kernels instead give each row one workgroup that is one subgroup
 * (`sg` invocations, at most the adapter's least subgroup size): each lane sums a strided part of
 * the row, `subgroupAdd` reduces it with no workgroup memory or barrier, and the lanes write the
 * row coalesced. The weight gradient is a column reduction over rows, one invocation per column
 * in a fixed order: deterministic, no atomics. Browser-safe.
 */
import type { GpuContext } from "../gpu/device.ts";
import {
  type Dispatch,
  dispatchKernel,
  type Kernel,
  type KernelContext,
  makeKernel,
} from "../gpu/kernel.ts";

const U = { u: "rows: u32, cols: u32, eps: f32, accumulate: u32" };

/** Lanes of a subgroup row: at most this many (rows of a few hundred columns). */
const MAX_SUBGROUP_ROW = 64;

/**
 * Invocations per row of the subgroup kernels on this device, or 0 for the one-row-per-invocation
 * kernels: the subgroup form is the gpu class's default where `subgroups` was enabled (`force`
 * picks it on any class, for tests).
 */
export function rmsnormSubgroupLanes(gpu: GpuContext, force = false): number {
  if (!gpu.subgroups || (gpu.adapterClass !== "gpu" && !force)) return 0;
  const n = Math.min(gpu.subgroups.minSize, MAX_SUBGROUP_ROW);
  return n >= 4 ? n : 0;
}

/**
 * The subgroup forms of the forward and input-gradient kernels: one workgroup of `sg` lanes (one
 * subgroup) per row; `row` reduces a strided part of the row with `subgroupAdd`, `out` writes it.
 */
function subgroupRowKernel(
  o: {
    key: string;
    sg: number;
    enable: boolean;
    reads: Record<string, "f32">;
    writes: Record<string, "f32">;
  },
  row: { sum: string; after: string },
): Kernel {
  return makeKernel({
    key: `${o.key}_sg${o.sg}`,
    enable: o.enable ? ["subgroups"] : undefined,
    uniforms: U,
    reads: o.reads,
    writes: o.writes,
    // The row comes from the workgroup id (uniform), so every lane of the subgroup reaches
    // subgroupAdd together.
    main: `
@compute @workgroup_size(${o.sg})
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u,
        @builtin(local_invocation_index) l: u32) {
  let i = wg.y * nwg.x + wg.x;
  if (i >= u.rows) { return; }
  let base = i * u.cols;
  var part = 0.0;
  for (var c = l; c < u.cols; c += ${o.sg}u) { ${row.sum} }
  let total = subgroupAdd(part);
  ${row.after.trim()}
}`,
  });
}

/** The three kernels: forward (y, rstd), input gradient, weight gradient (one row or column each). */
function rmsnormKernels(sg = 0, enable = false) {
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
  if (sg === 0) return { forward, dx, dw, sg };
  const sgForward = subgroupRowKernel({
    key: "rmsnorm_forward",
    sg,
    enable,
    reads: { x: "f32", w: "f32" },
    writes: { y: "f32", rstd: "f32" },
  }, {
    sum: "let v = x[base + c]; part = fma(v, v, part);",
    after: `
  let r = inverseSqrt(total / f32(u.cols) + u.eps);
  if (l == 0u) { rstd[i] = r; }
  for (var c = l; c < u.cols; c += ${sg}u) { y[base + c] = x[base + c] * r * w[c]; }`,
  });
  const sgDx = subgroupRowKernel({
    key: "rmsnorm_dx",
    sg,
    enable,
    reads: { dy: "f32", x: "f32", w: "f32", rstd: "f32" },
    writes: { dx: "f32" },
  }, {
    sum: "part = fma(dy[base + c] * w[c], x[base + c], part);",
    after: `
  let r = rstd[i];
  let k = r * r * r * total / f32(u.cols);
  for (var c = l; c < u.cols; c += ${sg}u) {
    var g = r * dy[base + c] * w[c] - k * x[base + c];
    if (u.accumulate != 0u) { g += dx[base + c]; }
    dx[base + c] = g;
  }`,
  });
  return { forward: sgForward, dx: sgDx, dw, sg };
}

/** Shape of an RMSNorm call. */
export interface RmsNormShape {
  rows: number;
  cols: number;
  /** Default 1e-5. */
  eps?: number;
  /**
   * The subgroup kernels: true forces them where the device has `subgroups` (on any adapter
   * class), false refuses them. Default: `rmsnormSubgroupLanes` (the gpu class's choice).
   */
  subgroups?: boolean;
}

/**
 * One dispatch of an RMSNorm kernel over `items` rows (forward, dx) or columns (dw); `perRow`: one
 * workgroup per item (the subgroup kernels), folded into y past the per-dimension maximum.
 */
function rmsDispatch(
  ctx: KernelContext,
  k: Kernel,
  buffers: Record<string, GPUBuffer>,
  s: RmsNormShape,
  o: { accumulate: boolean; items: number; perRow?: boolean },
): Dispatch {
  const max = ctx.gpu.device.limits.maxComputeWorkgroupsPerDimension;
  return dispatchKernel(ctx, k, {
    dims: { rows: s.rows, cols: s.cols },
    u: [{ u32: s.rows }, { u32: s.cols }, { f32: s.eps ?? 1e-5 }, { u32: o.accumulate ? 1 : 0 }],
    buffers,
    grid: o.perRow ? [Math.min(o.items, max), Math.ceil(o.items / max), 1] : o.items,
  });
}

/** The kernels a context uses (`subgroups`: force the subgroup forms where the device has them). */
function kernelsOf(ctx: KernelContext, subgroups?: boolean) {
  const sg = subgroups === false ? 0 : rmsnormSubgroupLanes(ctx.gpu, subgroups);
  return rmsnormKernels(sg, ctx.gpu.subgroups?.enable);
}

/** x is (R, C), w is (C,), y is (R, C), rstd is (R,) (saved for the backward). */
export function rmsnormForward(
  ctx: KernelContext,
  io: { x: GPUBuffer; w: GPUBuffer; y: GPUBuffer; rstd: GPUBuffer },
  shape: RmsNormShape,
): Dispatch {
  const ks = kernelsOf(ctx, shape.subgroups);
  return rmsDispatch(ctx, ks.forward, io, shape, {
    accumulate: false,
    items: shape.rows,
    perRow: ks.sg > 0,
  });
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
  const ks = kernelsOf(ctx, shape.subgroups);
  return [
    rmsDispatch(ctx, ks.dx, io, shape, {
      accumulate: shape.accumulateDx ?? false,
      items: shape.rows,
      perRow: ks.sg > 0,
    }),
    rmsDispatch(ctx, ks.dw, io, shape, {
      accumulate: shape.accumulateDw ?? false,
      items: shape.cols,
    }),
  ];
}
