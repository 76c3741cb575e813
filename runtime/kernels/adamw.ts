/**
 * AdamW (PyTorch semantics: decoupled weight decay `p ← p·(1 - lr·wd)`, bias-corrected moments)
 * over a range of a (possibly flat, many-tensor) parameter buffer. Per-step values (lr and the
 * bias corrections) live in one shared uniform buffer written once per step (`AdamWHyper`), so
 * the prepared dispatches are replayed unchanged; the gradient is multiplied by the clip scale
 * that `gradNorm` leaves on the GPU (no readback between backward and update). Browser-safe.
 */
import { upload } from "../gpu/resources.ts";
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

/** Moment decay rates and epsilon (fixed for a run). */
export interface AdamWOptions {
  /** Default 0.9. */
  beta1?: number;
  /** Default 0.95 (the training config's default). */
  beta2?: number;
  /** Default 1e-8. */
  eps?: number;
}

/** The shared per-step uniform buffer: lr, beta1, beta2, eps, 1-beta1^t, 1-beta2^t. */
export class AdamWHyper {
  readonly buffer: GPUBuffer;
  readonly beta1: number;
  readonly beta2: number;
  readonly eps: number;
  constructor(readonly ctx: KernelContext, o: AdamWOptions = {}) {
    this.beta1 = o.beta1 ?? 0.9;
    this.beta2 = o.beta2 ?? 0.95;
    this.eps = o.eps ?? 1e-8;
    this.buffer = uniforms(ctx, [
      { f32: 0 },
      { f32: this.beta1 },
      { f32: this.beta2 },
      { f32: this.eps },
      { f32: 1 },
      { f32: 1 },
    ], "adamw_hyper");
  }

  /** Sets the learning rate and the bias corrections of step `step` (1-based). */
  set(step: number, lr: number): void {
    if (!Number.isInteger(step) || step < 1) {
      throw new RangeError(`AdamW step must be >= 1, got ${step}`);
    }
    const bc1 = 1 - Math.pow(this.beta1, step), bc2 = 1 - Math.pow(this.beta2, step);
    const data = Float32Array.from([lr, this.beta1, this.beta2, this.eps, bc1, bc2, 0, 0]);
    upload(this.ctx.gpu.device, this.buffer, data);
  }
}

/** The update kernel: one invocation per parameter. */
export function adamwKernel(): Kernel {
  const code = `
struct H { lr: f32, beta1: f32, beta2: f32, eps: f32, bc1: f32, bc2: f32 }
struct U { offset: u32, n: u32, wd: f32 }
@group(0) @binding(0) var<uniform> h: H;
@group(0) @binding(1) var<uniform> u: U;
@group(0) @binding(2) var<storage, read_write> param: array<f32>;
@group(0) @binding(3) var<storage, read> grad: array<f32>;
@group(0) @binding(4) var<storage, read_write> m: array<f32>;
@group(0) @binding(5) var<storage, read_write> v: array<f32>;
@group(0) @binding(6) var<storage, read> clip: array<f32>;
${LINEAR_INDEX_WGSL}
@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u,
        @builtin(local_invocation_index) l: u32) {
  let j = linear_index(wg, nwg, l, ${WG}u);
  if (j >= u.n) { return; }
  let i = u.offset + j;
  let g = grad[i] * clip[1];
  let mi = h.beta1 * m[i] + (1.0 - h.beta1) * g;
  let vi = h.beta2 * v[i] + (1.0 - h.beta2) * g * g;
  m[i] = mi;
  v[i] = vi;
  let p = param[i] * (1.0 - h.lr * u.wd);
  param[i] = p - h.lr * (mi / h.bc1) / (sqrt(vi / h.bc2) + h.eps);
}`;
  return {
    key: "adamw",
    label: "adamw",
    code,
    bindings: ["h", "u", "param", "grad", "m", "v", "clip"],
  };
}

/**
 * Updates `param[offset .. offset+n)` from the same range of grad, m and v (all f32, same
 * layout). `clip` holds `[norm, scale]` (from `gradNorm`, or `[0, 1]` for no clipping); `hyper`
 * is the shared `AdamWHyper`.
 */
export function adamw(
  ctx: KernelContext,
  io: {
    param: GPUBuffer;
    grad: GPUBuffer;
    m: GPUBuffer;
    v: GPUBuffer;
    clip: GPUBuffer;
    hyper: AdamWHyper;
  },
  range: { offset?: number; n: number; weightDecay?: number },
): Dispatch {
  checkDims("adamw", { n: range.n });
  const k = adamwKernel();
  const u = uniforms(ctx, [
    { u32: range.offset ?? 0 },
    { u32: range.n },
    { f32: range.weightDecay ?? 0 },
  ], k.label);
  return prepare(ctx, k, {
    buffers: {
      param: io.param,
      grad: io.grad,
      m: io.m,
      v: io.v,
      clip: io.clip,
      h: io.hyper.buffer,
      u,
    },
    grid: grid1d(range.n, WG),
    owned: [u],
  });
}
