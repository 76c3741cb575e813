/**
 * AdamW (PyTorch semantics: decoupled weight decay `p ← p·(1 - lr·wd)`, bias-corrected moments)
 * over a range of a (possibly flat, many-tensor) parameter buffer. Per-step values (lr and the
 * bias corrections) live in one shared uniform buffer written once per step (`AdamWHyper`), so
 * the prepared dispatches are replayed unchanged; the gradient is multiplied by the clip scale
 * that `gradNorm` leaves on the GPU (no readback between backward and update). Browser-safe.
 */
import { upload } from "../gpu/resources.ts";
import {
  type Dispatch,
  dispatchKernel,
  type KernelContext,
  makeKernel,
  uniforms,
} from "../gpu/kernel.ts";

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

/** The update kernel: one invocation per parameter of the range. */
function adamwKernel() {
  return makeKernel({
    key: "adamw",
    uniforms: {
      h: "lr: f32, beta1: f32, beta2: f32, eps: f32, bc1: f32, bc2: f32",
      u: "offset: u32, n: u32, wd: f32",
    },
    reads: { grad: "f32", clip: "f32" },
    writes: { param: "f32", m: "f32", v: "f32" },
    main: {
      count: "u.n",
      body: `
  let k = u.offset + i;
  let g = grad[k] * clip[1];
  let mk = h.beta1 * m[k] + (1.0 - h.beta1) * g;
  let vk = h.beta2 * v[k] + (1.0 - h.beta2) * g * g;
  m[k] = mk;
  v[k] = vk;
  let p = param[k] * (1.0 - h.lr * u.wd);
  param[k] = p - h.lr * (mk / h.bc1) / (sqrt(vk / h.bc2) + h.eps);`,
    },
  });
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
  const { hyper, ...buffers } = io;
  return dispatchKernel(ctx, adamwKernel(), {
    dims: { n: range.n },
    u: [{ u32: range.offset ?? 0 }, { u32: range.n }, { f32: range.weightDecay ?? 0 }],
    buffers: { ...buffers, h: hyper.buffer },
    grid: range.n,
  });
}
