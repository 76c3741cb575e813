/**
 * Writing keys and values into a KV cache of slots. `ropeStore` applies RoPE (Hugging Face
 * "rotate_half", positions from each row's token coordinates) to the rows' query and key
 * projections: queries stay token-major for the attention kernel, keys (rotated) and values go to
 * the slot each row names in a cache laid out `[batch][slots][kvHeads][d]`, and the slot's token
 * coordinates `(copy, pos)` are recorded beside it, which is all a decode kernel needs to evaluate
 * the spec's mask against the cache. `scatterRows` copies chosen rows of one such cache into slots
 * of another (prefill keeps only the keys its retention plan retains). Browser-safe.
 *
 * Row info is `i32` triples `(copy, pos, slot)`; a negative slot writes nothing. Every index is
 * non-negative before it is divided (llvmpipe over GL computes `%` and `/` unsigned).
 */
import { type Dispatch, dispatchKernel, type KernelContext, makeKernel } from "../gpu/kernel.ts";

/** The RoPE + store kernel: one invocation per (row, head of q then k, e < d/2). */
function ropeStoreKernel() {
  return makeKernel({
    key: "kv_rope_store",
    uniforms: {
      u: "rows: u32, per_seq: u32, H: u32, HKV: u32, half: u32, S: u32, K: u32, flattened: u32",
    },
    reads: { q: "f32", k: "f32", v: "f32", info: "i32", table: "f32" },
    writes: { qr: "f32", ck: "f32", cv: "f32", coords: "i32" },
    main: {
      count: "u.rows * (u.H + u.HKV) * u.half",
      body: `
  let heads = u.H + u.HKV;
  let e = i % u.half;
  let hh = (i / u.half) % heads;
  let r = i / (u.half * heads);
  let c = info[3u * r];
  let n = info[3u * r + 1u];
  let slot = info[3u * r + 2u];
  let pid = select(u32(n), u32(n) * u.K + u32(c), u.flattened == 1u);
  let cs = pid * u.half + e;
  let co = table[2u * cs];
  let si = table[2u * cs + 1u];
  let d = 2u * u.half;
  if (hh < u.H) {
    let at = r * u.H * d + hh * d + e;
    let x1 = q[at];
    let x2 = q[at + u.half];
    qr[at] = x1 * co - x2 * si;
    qr[at + u.half] = x2 * co + x1 * si;
    return;
  }
  if (slot < 0) { return; }
  let kh = hh - u.H;
  let b = r / u.per_seq;
  let cell = b * u.S + u32(slot);
  let src = r * u.HKV * d + kh * d + e;
  let dst = (cell * u.HKV + kh) * d + e;
  let x1 = k[src];
  let x2 = k[src + u.half];
  ck[dst] = x1 * co - x2 * si;
  ck[dst + u.half] = x2 * co + x1 * si;
  cv[dst] = v[src];
  cv[dst + u.half] = v[src + u.half];
  if (kh == 0u && e == 0u) {
    coords[2u * cell] = c;
    coords[2u * cell + 1u] = n;
  }`,
    },
  });
}

/** Shape of a `ropeStore` call. */
export interface RopeStoreShape {
  /** Rows (tokens) of q, k, v. */
  rows: number;
  /** Rows per sequence: row r belongs to cache sequence floor(r / perSeq). */
  perSeq: number;
  heads: number;
  kvHeads: number;
  headDim: number;
  /** Slots per sequence of the destination cache. */
  slots: number;
  /** Copies per position (flattened position ids are pos·K + copy). */
  K: number;
  /** Position ids `pos·K + copy` instead of `pos`. */
  flattened: boolean;
}

/**
 * q (rows, H·d) and k, v (rows, HKV·d) token-major projections; info (rows, 3) i32 `(copy, pos,
 * slot)`; table from `ropeTable` covering every position id; qr (rows, H·d) the rotated queries;
 * ck, cv `[seqs][slots][HKV][d]`; coords `[seqs][slots][2]` i32.
 */
export function ropeStore(
  ctx: KernelContext,
  io: {
    q: GPUBuffer;
    k: GPUBuffer;
    v: GPUBuffer;
    info: GPUBuffer;
    table: GPUBuffer;
    qr: GPUBuffer;
    ck: GPUBuffer;
    cv: GPUBuffer;
    coords: GPUBuffer;
  },
  s: RopeStoreShape,
): Dispatch {
  const { rows, perSeq, heads, kvHeads, headDim, slots, K } = s;
  if (headDim % 2 !== 0) throw new RangeError(`RoPE head dim must be even, got ${headDim}`);
  const half = headDim / 2;
  return dispatchKernel(ctx, ropeStoreKernel(), {
    dims: { rows, perSeq, heads, kvHeads, headDim, slots, K },
    u: [
      { u32: rows },
      { u32: perSeq },
      { u32: heads },
      { u32: kvHeads },
      { u32: half },
      { u32: slots },
      { u32: K },
      { u32: s.flattened ? 1 : 0 },
    ],
    buffers: io,
    grid: rows * (heads + kvHeads) * half,
  });
}

/** The row scatter kernel: one invocation per (row, element of the row). */
function scatterRowsKernel() {
  return makeKernel({
    key: "kv_scatter_rows",
    uniforms: { u: "rows: u32, width: u32, S: u32, seq: u32" },
    reads: { sk: "f32", sv: "f32", info: "i32" },
    writes: { ck: "f32", cv: "f32", coords: "i32" },
    main: {
      count: "u.rows * u.width",
      body: `
  let j = i % u.width;
  let r = i / u.width;
  let slot = info[3u * r + 2u];
  if (slot < 0) { return; }
  let cell = u.seq * u.S + u32(slot);
  ck[cell * u.width + j] = sk[i];
  cv[cell * u.width + j] = sv[i];
  if (j == 0u) {
    coords[2u * cell] = info[3u * r];
    coords[2u * cell + 1u] = info[3u * r + 1u];
  }`,
    },
  });
}

/**
 * Copies row r of sk, sv (rows, width) to slot `info[3r+2]` of sequence `seq` of ck, cv
 * `[seqs][slots][width]`, and its `(copy, pos)` to coords; rows with a negative slot are skipped.
 */
export function scatterRows(
  ctx: KernelContext,
  io: {
    sk: GPUBuffer;
    sv: GPUBuffer;
    info: GPUBuffer;
    ck: GPUBuffer;
    cv: GPUBuffer;
    coords: GPUBuffer;
  },
  s: { rows: number; width: number; slots: number; seq: number },
): Dispatch {
  return dispatchKernel(ctx, scatterRowsKernel(), {
    dims: { rows: s.rows, width: s.width, slots: s.slots },
    u: [{ u32: s.rows }, { u32: s.width }, { u32: s.slots }, { u32: s.seq }],
    buffers: io,
    grid: s.rows * s.width,
  });
}
