/**
 * The PHD expansion on the GPU. Forward: `expandEmbed` builds the expanded sequence straight from
 * the batch's token ids (every copy of position p reads embed(x_p), or with per-copy tables copy
 * c's embed_c(x_p)), so the host never copies a sequence K times. Backward: `foldCopies` sums the K
 * copies' gradients per position, so the embedding scatter of a shared table works on B·L rows,
 * not B·K·L. `lossSum` adds a step's mean loss into a
 * two-float accumulator `[sum, steps]` on the GPU, read back only every few steps. Browser-safe.
 */
import { type Dispatch, dispatchKernel, type KernelContext, makeKernel } from "../gpu/kernel.ts";

/**
 * Expansion kernel: one invocation per output element. With `rowBase`, slot s reads table row
 * `id + row_base[s]` (per-copy embedding tables stacked in one table: copy c's from `c·V`).
 */
function expandKernel(rowBase: boolean) {
  return makeKernel({
    key: rowBase ? "phd_expand_rows" : "phd_expand",
    uniforms: { u: "batch: u32, tokens: u32, stride: u32, cols: u32, table_rows: u32" },
    reads: rowBase
      ? { table: "f32", ids: "u32", pos: "u32", row_base: "u32" }
      : { table: "f32", ids: "u32", pos: "u32" },
    writes: { out: "f32" },
    main: {
      count: "u.batch * u.tokens * u.cols",
      body: `
  let row = i / u.cols;
  let b = row / u.tokens;
  let id = min(ids[b * u.stride + pos[row % u.tokens]], u.table_rows - 1u)${
        rowBase ? " + row_base[row % u.tokens]" : ""
      };
  out[i] = table[id * u.cols + i % u.cols];`,
    },
  });
}

/**
 * table (T·V, C); ids (B, stride) u32 (a batch row of L+1 ids: inputs then the last target); pos
 * (N,) u32: the position p of each storage slot; rowBase (N,) u32, optional: the first table row
 * of each slot's table (per-copy embeddings: c·V for copy c); out (B·N, C). `tableRows` is V: ids
 * are clamped below it.
 */
export function expandEmbed(
  ctx: KernelContext,
  io: { table: GPUBuffer; ids: GPUBuffer; pos: GPUBuffer; rowBase?: GPUBuffer; out: GPUBuffer },
  s: { batch: number; tokens: number; stride: number; cols: number; tableRows: number },
): Dispatch {
  const { rowBase, ...rest } = io;
  return dispatchKernel(ctx, expandKernel(rowBase !== undefined), {
    dims: s,
    u: [{ u32: s.batch }, { u32: s.tokens }, { u32: s.stride }, { u32: s.cols }, {
      u32: s.tableRows,
    }],
    buffers: rowBase ? { ...rest, row_base: rowBase } : rest,
    grid: s.batch * s.tokens * s.cols,
  });
}

/** Fold kernel: one invocation per (sequence, position, column), summing K slots. */
function foldKernel() {
  return makeKernel({
    key: "phd_fold",
    uniforms: { u: "batch: u32, L: u32, K: u32, tokens: u32, cols: u32" },
    reads: { dx: "f32", slots: "u32" },
    writes: { out: "f32" },
    main: {
      count: "u.batch * u.L * u.cols",
      body: `
  let row = i / u.cols;
  let col = i % u.cols;
  let b = row / u.L;
  let p = row % u.L;
  var acc = 0.0;
  for (var c = 0u; c < u.K; c++) {
    acc += dx[(b * u.tokens + slots[p * u.K + c]) * u.cols + col];
  }
  out[i] = acc;`,
    },
  });
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
  return dispatchKernel(ctx, foldKernel(), {
    dims: s,
    u: [{ u32: s.batch }, { u32: s.L }, { u32: s.K }, { u32: s.K * s.L }, { u32: s.cols }],
    buffers: io,
    grid: s.batch * s.L * s.cols,
  });
}

const SUM_WG = 256;

/** Loss accumulation kernel: one workgroup. */
function lossSumKernel() {
  return makeKernel({
    key: "loss_sum",
    uniforms: { u: "n: u32" },
    reads: { losses: "f32" },
    writes: { acc: "f32" },
    helpers: `var<workgroup> sh: array<f32, ${SUM_WG}>;`,
    main: `
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
}`,
  });
}

/** acc `[sum, count]` += `[mean(losses[0..n)), 1]`. */
export function lossSum(
  ctx: KernelContext,
  io: { losses: GPUBuffer; acc: GPUBuffer },
  n: number,
): Dispatch {
  return dispatchKernel(ctx, lossSumKernel(), {
    dims: { n },
    u: [{ u32: n }],
    buffers: io,
    grid: [1, 1, 1],
  });
}
