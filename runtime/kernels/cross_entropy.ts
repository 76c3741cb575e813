/**
 * Fused softmax cross-entropy, forward and backward in one pass, on selected rows only (PHD
 * trains only the last copy of each position: a row-index buffer names them). One workgroup per
 * selected row: each invocation keeps an online (max, sum of exp) over a strided slice of the
 * vocabulary, a tree in workgroup memory merges them, then the row's loss
 * `lse - logit[target]` and gradient `scale · (softmax - onehot)` are written. Rows not selected
 * are never written: give the LM head only the selected rows, or clear dlogits. Browser-safe.
 */
import { WEBGPU_DEFAULT_LIMITS } from "../gpu/device.ts";
import { type Dispatch, dispatchKernel, type KernelContext, makeKernel } from "../gpu/kernel.ts";

/** Invocations per row (power of two). Default 64. */
export interface CrossEntropyParams {
  workgroupSize: number;
}

/** Builds the kernel; asserts the workgroup size is a power of two (tree reduction). */
function crossEntropyKernel(p: CrossEntropyParams = { workgroupSize: 64 }) {
  const wg = p.workgroupSize;
  if (!Number.isInteger(wg) || wg < 1 || (wg & (wg - 1)) !== 0 || wg > 256) {
    throw new RangeError(`cross-entropy workgroup size must be a power of two <= 256, got ${wg}`);
  }
  return makeKernel({
    key: `cross_entropy:wg${wg}`,
    uniforms: { u: "rows: u32, vocab: u32, scale: f32, grads: u32" },
    reads: { logits: "f32", rows: "u32", targets: "u32" },
    writes: { losses: "f32", dlogits: "f32" },
    helpers: `
var<workgroup> wm: array<f32, ${wg}>;
var<workgroup> ws: array<f32, ${wg}>;`,
    main: `
@compute @workgroup_size(${wg})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
        @builtin(local_invocation_index) l: u32) {
  let sel = wid.y * nwg.x + wid.x;
  // uniform control flow: every invocation of the workgroup takes the same branch
  if (sel >= u.rows) { return; }
  let base = rows[sel] * u.vocab;
  var m = -3.0e38;
  var s = 0.0;
  for (var v = l; v < u.vocab; v += ${wg}u) {
    let x = logits[base + v];
    if (x > m) { s = s * exp(m - x) + 1.0; m = x; } else { s += exp(x - m); }
  }
  wm[l] = m;
  ws[l] = s;
  for (var w = ${wg / 2}u; w > 0u; w /= 2u) {
    workgroupBarrier();
    if (l < w) {
      let m2 = wm[l + w];
      let s2 = ws[l + w];
      let mm = max(wm[l], m2);
      ws[l] = ws[l] * exp(wm[l] - mm) + s2 * exp(m2 - mm);
      wm[l] = mm;
    }
  }
  workgroupBarrier();
  let lse = wm[0] + log(ws[0]);
  let tgt = min(targets[sel], u.vocab - 1u);
  if (l == 0u) { losses[sel] = lse - logits[base + tgt]; }
  if (u.grads == 0u) { return; }
  for (var v = l; v < u.vocab; v += ${wg}u) {
    let p = exp(logits[base + v] - lse);
    dlogits[base + v] = u.scale * (p - select(0.0, 1.0, v == tgt));
  }
}`,
  });
}

/** Shape of a cross-entropy call. */
export interface CrossEntropyShape {
  /** Selected rows (the length of `rows`, `targets` and `losses`). */
  rows: number;
  vocab: number;
  /** Gradient scale, usually 1/(number of loss terms). Default 1/rows. */
  scale?: number;
  /** Write dlogits (default true); false is evaluation. */
  grads?: boolean;
  params?: CrossEntropyParams;
}

/**
 * logits is (R_all, V), rows is (M,) u32 indices into R_all, targets is (M,) u32, losses is (M,)
 * per-row nats, dlogits is (R_all, V) (only the selected rows written).
 */
export function crossEntropy(
  ctx: KernelContext,
  io: {
    logits: GPUBuffer;
    rows: GPUBuffer;
    targets: GPUBuffer;
    losses: GPUBuffer;
    dlogits: GPUBuffer;
  },
  shape: CrossEntropyShape,
): Dispatch {
  const x = Math.min(shape.rows, WEBGPU_DEFAULT_LIMITS.maxComputeWorkgroupsPerDimension);
  return dispatchKernel(ctx, crossEntropyKernel(shape.params), {
    dims: { rows: shape.rows, vocab: shape.vocab },
    u: [
      { u32: shape.rows },
      { u32: shape.vocab },
      { f32: shape.scale ?? 1 / shape.rows },
      { u32: shape.grads === false ? 0 : 1 },
    ],
    buffers: io,
    grid: [x, Math.ceil(shape.rows / x), 1],
  });
}
