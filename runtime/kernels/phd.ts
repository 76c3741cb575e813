/**
 * The PHD expansion on the GPU. Forward: `expandEmbed` builds the expanded sequence straight from
 * the batch's token ids (every copy of position p reads embed(x_p)), so the host never copies a
 * sequence K times. Backward: `foldCopies` sums the K copies' gradients per position, so the
 * embedding scatter works on B·L rows, not B·K·L. `lossSum` adds a step's mean loss into a
 * two-float accumulator `[sum, steps]` on the GPU, read back only every few steps. Browser-safe.
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

/** Expansion kernel: one invocation per output element. */
export function expandKernel(): Kernel {
  const code = `
struct U { batch: u32, tokens: u32, stride: u32, cols: u32, table_rows: u32 }
@group(0) @binding(0) var<uniform> u: U;
@group(0) @binding(1) var<storage, read> table: array<f32>;
@group(0) @binding(2) var<storage, read> ids: array<u32>;
@group(0) @binding(3) var<storage, read> pos: array<u32>;
@group(0) @binding(4) var<storage, read_write> out: array<f32>;
${LINEAR_INDEX_WGSL}
@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u,
        @builtin(local_invocation_index) l: u32) {
  let i = linear_index(wg, nwg, l, ${WG}u);
  if (i >= u.batch * u.tokens * u.cols) { return; }
  let row = i / u.cols;
  let b = row / u.tokens;
  let id = min(ids[b * u.stride + pos[row % u.tokens]], u.table_rows - 1u);
  out[i] = table[id * u.cols + i % u.cols];
}`;
  return {
    key: "phd_expand",
    label: "phd_expand",
    code,
    bindings: ["u", "table", "ids", "pos", "out"],
  };
}

/**
 * table (V, C); ids (B, stride) u32 (a batch row of L+1 ids: inputs then the last target); pos
 * (N,) u32: the position p of each storage slot; out (B·N, C).
 */
export function expandEmbed(
  ctx: KernelContext,
  io: { table: GPUBuffer; ids: GPUBuffer; pos: GPUBuffer; out: GPUBuffer },
  s: { batch: number; tokens: number; stride: number; cols: number; tableRows: number },
): Dispatch {
  checkDims("phd_expand", s);
  const k = expandKernel();
  const u = uniforms(ctx, [
    { u32: s.batch },
    { u32: s.tokens },
    { u32: s.stride },
    { u32: s.cols },
    { u32: s.tableRows },
  ], k.label);
  return prepare(ctx, k, {
    buffers: { u, ...io },
    grid: grid1d(s.batch * s.tokens * s.cols, WG),
    owned: [u],
  });
}

/** Fold kernel: one invocation per (sequence, position, column), summing K slots. */
export function foldKernel(): Kernel {
  const code = `
struct U { batch: u32, L: u32, K: u32, tokens: u32, cols: u32 }
@group(0) @binding(0) var<uniform> u: U;
@group(0) @binding(1) var<storage, read> dx: array<f32>;
@group(0) @binding(2) var<storage, read> slots: array<u32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;
${LINEAR_INDEX_WGSL}
@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u,
        @builtin(local_invocation_index) l: u32) {
  let i = linear_index(wg, nwg, l, ${WG}u);
  if (i >= u.batch * u.L * u.cols) { return; }
  let row = i / u.cols;
  let col = i % u.cols;
  let b = row / u.L;
  let p = row % u.L;
  var acc = 0.0;
  for (var c = 0u; c < u.K; c++) {
    acc += dx[(b * u.tokens + slots[p * u.K + c]) * u.cols + col];
  }
  out[i] = acc;
}`;
  return { key: "phd_fold", label: "phd_fold", code, bindings: ["u", "dx", "slots", "out"] };
}

/**
 * dx (B·N, C) in storage order; slots (L·K,) u32: the storage slot of copy c of position p at
 * `p·K + c`; out (B·L, C): per position, the sum over its copies.
 */
export function foldCopies(
  ctx: KernelContext,
  io: { dx: GPUBuffer; slots: GPUBuffer; out: GPUBuffer },
  s: { batch: number; L: number; K: number; cols: number },
): Dispatch {
  checkDims("phd_fold", s);
  const k = foldKernel();
  const u = uniforms(ctx, [
    { u32: s.batch },
    { u32: s.L },
    { u32: s.K },
    { u32: s.K * s.L },
    { u32: s.cols },
  ], k.label);
  return prepare(ctx, k, {
    buffers: { u, ...io },
    grid: grid1d(s.batch * s.L * s.cols, WG),
    owned: [u],
  });
}

const SUM_WG = 256;

/** Loss accumulation kernel: one workgroup. */
export function lossSumKernel(): Kernel {
  const code = `
struct U { n: u32 }
@group(0) @binding(0) var<uniform> u: U;
@group(0) @binding(1) var<storage, read> losses: array<f32>;
@group(0) @binding(2) var<storage, read_write> acc: array<f32>;
var<workgroup> sh: array<f32, ${SUM_WG}>;
@compute @workgroup_size(${SUM_WG})
fn main(@builtin(local_invocation_index) l: u32) {
  var s = 0.0;
  for (var i = l; i < u.n; i += ${SUM_WG}u) { s += losses[i]; }
  sh[l] = s;
  for (var w = ${SUM_WG / 2}u; w > 0u; w /= 2u) {
    workgroupBarrier();
    if (l < w) { sh[l] += sh[l + w]; }
  }
  if (l == 0u) {
    acc[0] += sh[0] / f32(u.n);
    acc[1] += 1.0;
  }
}`;
  return { key: "loss_sum", label: "loss_sum", code, bindings: ["u", "losses", "acc"] };
}

/** acc `[sum, count]` += `[mean(losses[0..n)), 1]`. */
export function lossSum(
  ctx: KernelContext,
  io: { losses: GPUBuffer; acc: GPUBuffer },
  n: number,
): Dispatch {
  checkDims("loss_sum", { n });
  const k = lossSumKernel();
  const u = uniforms(ctx, [{ u32: n }], k.label);
  return prepare(ctx, k, { buffers: { u, ...io }, grid: [1, 1, 1], owned: [u] });
}
