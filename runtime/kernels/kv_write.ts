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

/** The RoPE + store kernel: one invocation per (row, head of q then k, i < d/2). */
export function ropeStoreKernel(): Kernel {
  const code = `
struct U { rows: u32, per_seq: u32, H: u32, HKV: u32, half: u32, S: u32, K: u32, flattened: u32 }
@group(0) @binding(0) var<uniform> u: U;
@group(0) @binding(1) var<storage, read> q: array<f32>;
@group(0) @binding(2) var<storage, read> k: array<f32>;
@group(0) @binding(3) var<storage, read> v: array<f32>;
@group(0) @binding(4) var<storage, read> info: array<i32>;
@group(0) @binding(5) var<storage, read> table: array<f32>;
@group(0) @binding(6) var<storage, read_write> qr: array<f32>;
@group(0) @binding(7) var<storage, read_write> ck: array<f32>;
@group(0) @binding(8) var<storage, read_write> cv: array<f32>;
@group(0) @binding(9) var<storage, read_write> coords: array<i32>;
${LINEAR_INDEX_WGSL}
@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u,
        @builtin(local_invocation_index) l: u32) {
  let heads = u.H + u.HKV;
  let idx = linear_index(wg, nwg, l, ${WG}u);
  if (idx >= u.rows * heads * u.half) { return; }
  let i = idx % u.half;
  let hh = (idx / u.half) % heads;
  let r = idx / (u.half * heads);
  let c = info[3u * r];
  let n = info[3u * r + 1u];
  let slot = info[3u * r + 2u];
  let pid = select(u32(n), u32(n) * u.K + u32(c), u.flattened == 1u);
  let cs = pid * u.half + i;
  let co = table[2u * cs];
  let si = table[2u * cs + 1u];
  let d = 2u * u.half;
  if (hh < u.H) {
    let at = r * u.H * d + hh * d + i;
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
  let src = r * u.HKV * d + kh * d + i;
  let dst = (cell * u.HKV + kh) * d + i;
  let x1 = k[src];
  let x2 = k[src + u.half];
  ck[dst] = x1 * co - x2 * si;
  ck[dst + u.half] = x2 * co + x1 * si;
  cv[dst] = v[src];
  cv[dst + u.half] = v[src + u.half];
  if (kh == 0u && i == 0u) {
    coords[2u * cell] = c;
    coords[2u * cell + 1u] = n;
  }
}`;
  return {
    key: "kv_rope_store",
    label: "kv_rope_store",
    code,
    bindings: ["u", "q", "k", "v", "info", "table", "qr", "ck", "cv", "coords"],
  };
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
  checkDims("kv_rope_store", { rows, perSeq, heads, kvHeads, headDim, slots, K });
  if (headDim % 2 !== 0) throw new RangeError(`RoPE head dim must be even, got ${headDim}`);
  const k = ropeStoreKernel(), half = headDim / 2;
  const u = uniforms(ctx, [
    { u32: rows },
    { u32: perSeq },
    { u32: heads },
    { u32: kvHeads },
    { u32: half },
    { u32: slots },
    { u32: K },
    { u32: s.flattened ? 1 : 0 },
  ], k.label);
  return prepare(ctx, k, {
    buffers: { u, ...io },
    grid: grid1d(rows * (heads + kvHeads) * half, WG),
    owned: [u],
  });
}

/** The row scatter kernel: one invocation per (row, element of the row). */
export function scatterRowsKernel(): Kernel {
  const code = `
struct U { rows: u32, width: u32, S: u32, seq: u32 }
@group(0) @binding(0) var<uniform> u: U;
@group(0) @binding(1) var<storage, read> sk: array<f32>;
@group(0) @binding(2) var<storage, read> sv: array<f32>;
@group(0) @binding(3) var<storage, read> info: array<i32>;
@group(0) @binding(4) var<storage, read_write> ck: array<f32>;
@group(0) @binding(5) var<storage, read_write> cv: array<f32>;
@group(0) @binding(6) var<storage, read_write> coords: array<i32>;
${LINEAR_INDEX_WGSL}
@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u,
        @builtin(local_invocation_index) l: u32) {
  let idx = linear_index(wg, nwg, l, ${WG}u);
  if (idx >= u.rows * u.width) { return; }
  let j = idx % u.width;
  let r = idx / u.width;
  let slot = info[3u * r + 2u];
  if (slot < 0) { return; }
  let cell = u.seq * u.S + u32(slot);
  ck[cell * u.width + j] = sk[idx];
  cv[cell * u.width + j] = sv[idx];
  if (j == 0u) {
    coords[2u * cell] = info[3u * r];
    coords[2u * cell + 1u] = info[3u * r + 1u];
  }
}`;
  return {
    key: "kv_scatter_rows",
    label: "kv_scatter_rows",
    code,
    bindings: ["u", "sk", "sv", "info", "ck", "cv", "coords"],
  };
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
  checkDims("kv_scatter_rows", { rows: s.rows, width: s.width, slots: s.slots });
  const k = scatterRowsKernel();
  const u = uniforms(ctx, [
    { u32: s.rows },
    { u32: s.width },
    { u32: s.slots },
    { u32: s.seq },
  ], k.label);
  return prepare(ctx, k, {
    buffers: { u, ...io },
    grid: grid1d(s.rows * s.width, WG),
    owned: [u],
  });
}
