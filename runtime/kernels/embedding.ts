/**
 * Row gather and its backward. Forward: `out[r] = table[ids[r]]` (the token embedding; also the
 * gather of the last copy's hidden rows before the LM head). Backward: `dtable[v] (+)= sum of
 * dout[r] over rows with ids[r] == v`, without float atomics: the ids come from the host, which
 * builds a CSR index (`rowIndex`: rows grouped by id, a counting sort) so that one invocation per
 * (table row, column) sums exactly its rows in a fixed order (deterministic). Browser-safe.
 */
import { checkBindingSize } from "../gpu/device.ts";
import { type Dispatch, dispatchKernel, type KernelContext, makeKernel } from "../gpu/kernel.ts";

/** Rows grouped by id: rows with id v are `perm[offsets[v] .. offsets[v+1])`, ascending. */
export interface RowIndex {
  offsets: Uint32Array;
  perm: Uint32Array;
}

/** Counting sort of row ids into a CSR index; ids must be < `rows` (the table's row count). */
export function rowIndex(ids: ArrayLike<number>, rows: number): RowIndex {
  const offsets = new Uint32Array(rows + 1);
  for (let r = 0; r < ids.length; r++) {
    const v = ids[r];
    if (!(v >= 0 && v < rows)) throw new RangeError(`id ${v} at row ${r} is outside [0, ${rows})`);
    offsets[v + 1]++;
  }
  for (let v = 0; v < rows; v++) offsets[v + 1] += offsets[v];
  const fill = offsets.slice(0, rows), perm = new Uint32Array(ids.length);
  for (let r = 0; r < ids.length; r++) perm[fill[ids[r]]++] = r;
  return { offsets, perm };
}

/** Gather kernel: one invocation per output element. */
function gatherKernel() {
  return makeKernel({
    key: "gather",
    uniforms: { u: "rows: u32, cols: u32, table_rows: u32" },
    reads: { table: "f32", ids: "u32" },
    writes: { out: "f32" },
    main: {
      count: "u.rows * u.cols",
      body: `
  let r = i / u.cols;
  let id = min(ids[r], u.table_rows - 1u);
  out[i] = table[id * u.cols + i % u.cols];`,
    },
  });
}

/** Scatter-add kernel: one invocation per (table row, column), summing its CSR segment. */
function scatterKernel() {
  return makeKernel({
    key: "scatter_add",
    uniforms: { u: "table_rows: u32, cols: u32, accumulate_rows: u32" },
    reads: { dout: "f32", offsets: "u32", perm: "u32" },
    writes: { dtable: "f32" },
    main: {
      count: "u.table_rows * u.cols",
      body: `
  let v = i / u.cols;
  let c = i % u.cols;
  var acc = 0.0;
  for (var s = offsets[v]; s < offsets[v + 1u]; s++) { acc += dout[perm[s] * u.cols + c]; }
  if (v < u.accumulate_rows) { acc += dtable[i]; }
  dtable[i] = acc;`,
    },
  });
}

/**
 * Forward gather: table is (V, C), ids is (R,) u32, out is (R, C).
 * Ids past the table are clamped to its last row (callers validate ids on the host).
 */
export function gather(
  ctx: KernelContext,
  io: { table: GPUBuffer; ids: GPUBuffer; out: GPUBuffer },
  shape: { rows: number; cols: number; tableRows: number },
): Dispatch {
  const { rows, cols, tableRows } = shape;
  checkBindingSize(ctx.gpu, rows * cols * 4, `gather out (${rows}, ${cols}) f32`);
  return dispatchKernel(ctx, gatherKernel(), {
    dims: { rows, cols, tableRows },
    u: [{ u32: rows }, { u32: cols }, { u32: tableRows }],
    buffers: io,
    grid: rows * cols,
  });
}

/**
 * Backward of `gather`: dout is (R, C), offsets is (V+1,) and perm is (R,) from `rowIndex(ids,
 * V)`, dtable is (V, C), overwritten, except its first `accumulateRows` rows (default 0), which
 * are added to (tied embeddings: the LM head gradient is already there, in copy 0's rows).
 */
export function scatterAdd(
  ctx: KernelContext,
  io: { dout: GPUBuffer; offsets: GPUBuffer; perm: GPUBuffer; dtable: GPUBuffer },
  shape: { cols: number; tableRows: number; accumulateRows?: number },
): Dispatch {
  const { cols, tableRows } = shape;
  return dispatchKernel(ctx, scatterKernel(), {
    dims: { cols, tableRows },
    u: [{ u32: tableRows }, { u32: cols }, { u32: shape.accumulateRows ?? 0 }],
    buffers: io,
    grid: tableRows * cols,
  });
}
