/**
 * Next-token sampling on the GPU, one workgroup per sequence, so a decode loop never reads logits
 * back: the chosen id goes straight into the next step's input (`next[seq]`) and into the
 * sequence's output list (`out[seq·maxNew + i]`, i read from the step record).
 *
 * Modes: greedy (argmax, ties to the lowest id); sampling with temperature T, top-k and top-p
 * (nucleus): the k-th largest logit and then the nucleus threshold are found by bisection on the
 * logits' order-preserving bit patterns (32 rounds of a workgroup count or sum, exact for any
 * vocabulary size, no sort), tokens tied at a threshold are all kept, and the draw walks the kept
 * tokens in id order with a uniform from a counter-based hash of (seed, sequence, index): the same
 * seed gives the same text whatever the batching of steps. Forced mode copies a given token (teacher
 * forcing, for tests). Loops are bounded by uniforms (never unrolled). Browser-safe.
 */
import { type Dispatch, dispatchKernel, type KernelContext, makeKernel } from "../gpu/kernel.ts";

const WG = 64;

/** How the next token is chosen. */
export type SampleMode = "greedy" | "sample" | "forced";
const MODES: Record<SampleMode, number> = { greedy: 0, sample: 1, forced: 2 };

/** The sampling kernel. */
function sampleKernel() {
  return makeKernel({
    key: "sample",
    uniforms: {
      u: "rows: u32, seq0: u32, V: u32, max_new: u32, out_base: u32, mode: u32, " +
        "inv_temp: f32, top_k: u32, top_p: f32, seed: u32, bits: u32, chunk: u32, lanes: u32",
    },
    reads: { logits: "f32", steps: "i32", forced: "u32" },
    writes: { next: "u32", out: "u32" },
    helpers: `
var<workgroup> red_f: array<f32, ${WG}>;
var<workgroup> red_u: array<u32, ${WG}>;
var<workgroup> count: atomic<u32>;
var<workgroup> shared_u: u32;

fn pcg(v: u32) -> u32 {
  let s = v * 747796405u + 2891336453u;
  let w = ((s >> ((s >> 28u) + 4u)) ^ s) * 277803737u;
  return (w >> 22u) ^ w;
}

// Order-preserving map of a finite float to u32.
fn okey(x: f32) -> u32 {
  let b = bitcast<u32>(x);
  return select(b | 0x80000000u, ~b, (b & 0x80000000u) != 0u);
}

// Workgroup sum of red_f (every invocation calls it; the result is in red_f[0]).
fn sum_reduce(lid: u32) -> f32 {
  for (var w = ${WG / 2}u; w > 0u; w >>= 1u) {
    workgroupBarrier();
    if (lid < w) { red_f[lid] += red_f[lid + w]; }
  }
  return workgroupUniformLoad(&red_f[0]);
}`,
    main: `
@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let r = wg.x;
  let seq = u.seq0 + r;
  let i = u32(steps[u.out_base + r]);
  let base = r * u.V;
  let dst = seq * u.max_new + i;
  if (u.mode == 2u) {
    if (lid == 0u) {
      let t = forced[dst];
      next[seq] = t;
      out[dst] = t;
    }
    return;
  }
  // Argmax (ties to the lowest id): each invocation scans ids lid, lid + WG, ... in order.
  var best = -3.0e38;
  var arg = 0u;
  for (var j = lid; j < u.V; j += ${WG}u) {
    let x = logits[base + j];
    if (x > best || j == lid) { best = x; arg = j; }
  }
  red_f[lid] = best;
  red_u[lid] = arg;
  for (var w = ${WG / 2}u; w > 0u; w >>= 1u) {
    workgroupBarrier();
    if (lid < w) {
      let x = red_f[lid + w];
      let a = red_u[lid + w];
      if (x > red_f[lid] || (x == red_f[lid] && a < red_u[lid])) { red_f[lid] = x; red_u[lid] = a; }
    }
  }
  workgroupBarrier();
  let m = red_f[0];
  let amax = red_u[0];
  if (u.mode == 0u) {
    if (lid == 0u) { next[seq] = amax; out[dst] = amax; }
    return;
  }
  workgroupBarrier();
  // top-k: the largest key tk with at least top_k logits >= it (bisection, bit by bit).
  var tk = 0u;
  if (u.top_k > 0u && u.top_k < u.V) {
    for (var bit = 0u; bit < u.bits; bit++) {
      let cand = tk | (0x80000000u >> bit);
      if (lid == 0u) { atomicStore(&count, 0u); }
      workgroupBarrier();
      var c = 0u;
      for (var j = lid; j < u.V; j += ${WG}u) {
        if (okey(logits[base + j]) >= cand) { c++; }
      }
      atomicAdd(&count, c);
      workgroupBarrier();
      if (lid == 0u) { shared_u = atomicLoad(&count); }
      let total = workgroupUniformLoad(&shared_u);
      if (total >= u.top_k) { tk = cand; }
    }
  }
  // Unnormalised probabilities of the top-k set, and their sum.
  var part = 0.0;
  for (var j = lid; j < u.V; j += ${WG}u) {
    let x = logits[base + j];
    if (okey(x) >= tk) { part += exp((x - m) * u.inv_temp); }
  }
  workgroupBarrier();
  red_f[lid] = part;
  let total = sum_reduce(lid);
  // top-p: the largest key tp >= tk whose tokens hold at least top_p of that mass.
  var tp = tk;
  if (u.top_p < 1.0) {
    let want = u.top_p * total;
    var lo = tk;
    for (var bit = 0u; bit < u.bits; bit++) {
      let cand = lo | (0x80000000u >> bit);
      var s = 0.0;
      for (var j = lid; j < u.V; j += ${WG}u) {
        let x = logits[base + j];
        if (okey(x) >= max(cand, tk)) { s += exp((x - m) * u.inv_temp); }
      }
      workgroupBarrier();
      red_f[lid] = s;
      let mass = sum_reduce(lid);
      if (mass >= want) { lo = cand; }
    }
    tp = max(lo, tk);
  }
  // Kept mass per contiguous chunk of ids, then the draw walks the chunks in id order.
  let j0 = lid * u.chunk;
  let j1 = min(u.V, j0 + u.chunk);
  var cm = 0.0;
  for (var j = j0; j < j1; j++) {
    let x = logits[base + j];
    if (okey(x) >= tp) { cm += exp((x - m) * u.inv_temp); }
  }
  workgroupBarrier();
  red_f[lid] = cm;
  workgroupBarrier();
  if (lid == 0u) {
    var kept = 0.0;
    for (var t = 0u; t < u.lanes; t++) { kept += red_f[t]; }
    let h = pcg(u.seed ^ pcg((seq * 0x9e3779b9u) ^ pcg(i + 0x632be5abu)));
    var goal = (f32(h >> 8u) / 16777216.0) * kept;
    var pick = amax;
    var found = false;
    for (var t = 0u; t < u.lanes && !found; t++) {
      if (goal < red_f[t] || t + 1u == u.lanes) {
        let a = t * u.chunk;
        let z = min(u.V, a + u.chunk);
        for (var j = a; j < z && !found; j++) {
          let x = logits[base + j];
          if (okey(x) >= tp) {
            pick = j;
            let p = exp((x - m) * u.inv_temp);
            if (goal < p) { found = true; }
            goal -= p;
          }
        }
        if (!found && t + 1u == u.lanes) { found = true; }
      } else {
        goal -= red_f[t];
      }
    }
    next[seq] = pick;
    out[dst] = pick;
  }
}`,
  });
}

/** Sampling choices (host side). */
export interface SampleParams {
  mode: SampleMode;
  /** Temperature > 0 (sample mode). */
  temperature?: number;
  /** Keep the k most likely tokens (0: all). */
  topK?: number;
  /** Keep the smallest set of most likely tokens holding this probability (1: all). */
  topP?: number;
  seed?: number;
}

/**
 * logits (rows, V); steps i32: the output index of row r is `steps[outBase + r]`; forced and out
 * (seqs, maxNew) u32; next (seqs,) u32. Row r is sequence `seq0 + r`.
 */
export function sample(
  ctx: KernelContext,
  io: {
    logits: GPUBuffer;
    steps: GPUBuffer;
    forced: GPUBuffer;
    next: GPUBuffer;
    out: GPUBuffer;
  },
  s: { rows: number; seq0: number; vocab: number; maxNew: number; outBase: number } & SampleParams,
): Dispatch {
  const t = s.temperature ?? 1;
  if (s.mode === "sample" && !(t > 0)) {
    throw new RangeError(`temperature must be > 0, got ${t}`);
  }
  return dispatchKernel(ctx, sampleKernel(), {
    dims: { rows: s.rows, vocab: s.vocab, maxNew: s.maxNew },
    u: [
      { u32: s.rows },
      { u32: s.seq0 },
      { u32: s.vocab },
      { u32: s.maxNew },
      { u32: s.outBase },
      { u32: MODES[s.mode] },
      { f32: 1 / t },
      { u32: s.topK ?? 0 },
      { f32: s.topP ?? 1 },
      { u32: (s.seed ?? 0) >>> 0 },
      { u32: 32 },
      { u32: Math.ceil(s.vocab / WG) },
      { u32: WG },
    ],
    buffers: io,
    grid: [s.rows, 1, 1],
  });
}
