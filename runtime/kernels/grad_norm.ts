/**
 * Global-norm gradient clipping without a readback: a sum-of-squares pass per gradient range
 * writes fixed per-workgroup partial sums (deterministic: no atomics, fixed order), and a
 * one-workgroup pass adds them up and writes `[norm, scale]`, `scale = min(1, max_norm/(norm +
 * 1e-6))` (PyTorch `clip_grad_norm_`), which AdamW multiplies into every gradient. Browser-safe.
 */
import { storageBuffer } from "../gpu/resources.ts";
import {
  checkDims,
  type Dispatch,
  dispatchKernel,
  type KernelContext,
  makeKernel,
  prepare,
  uniforms,
} from "../gpu/kernel.ts";

const WG = 256;

/** Partial sums per gradient range (workgroups of the sum-of-squares pass). Default 32. */
const DEFAULT_PARTS = 32;

const REDUCE = `
var<workgroup> sh: array<f32, ${WG}>;
fn reduce(l: u32, x: f32) -> f32 {
  sh[l] = x;
  for (var w = ${WG / 2}u; w > 0u; w /= 2u) {
    workgroupBarrier();
    if (l < w) { sh[l] += sh[l + w]; }
  }
  workgroupBarrier();
  return sh[0];
}`;

/** The two kernels. */
function gradNormKernels() {
  const sumSquares = makeKernel({
    key: "grad_sumsq",
    uniforms: { u: "offset: u32, n: u32, dst: u32" },
    reads: { grad: "f32" },
    writes: { partials: "f32" },
    helpers: REDUCE,
    main: `
@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u,
        @builtin(local_invocation_index) l: u32) {
  var acc = 0.0;
  for (var j = wg.x * ${WG}u + l; j < u.n; j += nwg.x * ${WG}u) {
    let g = grad[u.offset + j];
    acc = fma(g, g, acc);
  }
  let s = reduce(l, acc);
  if (l == 0u) { partials[u.dst + wg.x] = s; }
}`,
  });
  const finish = makeKernel({
    key: "grad_norm",
    uniforms: { u: "count: u32, max_norm: f32" },
    reads: { partials: "f32" },
    writes: { out: "f32" },
    helpers: REDUCE,
    main: `
@compute @workgroup_size(${WG})
fn main(@builtin(local_invocation_index) l: u32) {
  var acc = 0.0;
  for (var j = l; j < u.count; j += ${WG}u) { acc += partials[j]; }
  let norm = sqrt(reduce(l, acc));
  if (l == 0u) {
    out[0] = norm;
    out[1] = select(1.0, min(1.0, u.max_norm / (norm + 1e-6)), u.max_norm > 0.0);
  }
}`,
  });
  return { sumSquares, finish };
}

/** One gradient range: `buffer[offset .. offset+n)`. */
export interface GradRange {
  buffer: GPUBuffer;
  offset?: number;
  n: number;
}

/**
 * Global L2 norm of all ranges into out = `[norm, scale]` (2 f32); `maxNorm` 0 disables clipping
 * (scale 1). One dispatch per range plus one.
 */
export function gradNorm(
  ctx: KernelContext,
  io: { ranges: readonly GradRange[]; out: GPUBuffer },
  o: { maxNorm: number; parts?: number },
): Dispatch[] {
  const ks = gradNormKernels(), parts = o.parts ?? DEFAULT_PARTS;
  checkDims("grad_norm", { ranges: io.ranges.length, parts });
  const partials = storageBuffer(ctx.gpu.device, io.ranges.length * parts * 4, "grad_partials");
  const out: Dispatch[] = io.ranges.map((r, i) => {
    return dispatchKernel(ctx, ks.sumSquares, {
      dims: { n: r.n },
      u: [{ u32: r.offset ?? 0 }, { u32: r.n }, { u32: i * parts }],
      buffers: { grad: r.buffer, partials },
      grid: [parts, 1, 1],
    });
  });
  const u = uniforms(ctx, [{ u32: io.ranges.length * parts }, { f32: o.maxNorm }], ks.finish.label);
  out.push(prepare(ctx, ks.finish, {
    buffers: { u, partials, out: io.out },
    grid: [1, 1, 1],
    owned: [u, partials],
  }));
  return out;
}
