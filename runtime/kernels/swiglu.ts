/**
 * SwiGLU activation of the Llama MLP: `h = silu(gate) · up`, `silu(g) = g · sigmoid(g)`, forward
 * and backward, elementwise over the (R, I) outputs of gate_proj and up_proj. Browser-safe.
 */
import { type Dispatch, dispatchKernel, type KernelContext, makeKernel } from "../gpu/kernel.ts";

const SIGMOID = "fn sigmoid(x: f32) -> f32 { return 1.0 / (1.0 + exp(-x)); }";

/** Forward and backward kernels (one invocation per element). */
function swigluKernels() {
  const forward = makeKernel({
    key: "swiglu_forward",
    uniforms: { u: "n: u32" },
    reads: { gate: "f32", up: "f32" },
    writes: { out: "f32" },
    helpers: SIGMOID,
    main: {
      count: "u.n",
      body: `
  let g = gate[i];
  out[i] = g * sigmoid(g) * up[i];`,
    },
  });
  // d silu(g)/dg = s·(1 + g·(1 - s)), s = sigmoid(g)
  const backward = makeKernel({
    key: "swiglu_backward",
    uniforms: { u: "n: u32" },
    reads: { dout: "f32", gate: "f32", up: "f32" },
    writes: { dgate: "f32", dup: "f32" },
    helpers: SIGMOID,
    main: {
      count: "u.n",
      body: `
  let g = gate[i];
  let s = sigmoid(g);
  let d = dout[i];
  dgate[i] = d * up[i] * s * (1.0 + g * (1.0 - s));
  dup[i] = d * g * s;`,
    },
  });
  return { forward, backward };
}

/** gate, up and out are (R, I); n = R·I. */
export function swigluForward(
  ctx: KernelContext,
  io: { gate: GPUBuffer; up: GPUBuffer; out: GPUBuffer },
  n: number,
): Dispatch {
  const k = swigluKernels().forward;
  return dispatchKernel(ctx, k, { dims: { n }, u: [{ u32: n }], buffers: io, grid: n });
}

/** dout, gate, up, dgate and dup are (R, I); n = R·I. */
export function swigluBackward(
  ctx: KernelContext,
  io: { dout: GPUBuffer; gate: GPUBuffer; up: GPUBuffer; dgate: GPUBuffer; dup: GPUBuffer },
  n: number,
): Dispatch {
  const k = swigluKernels().backward;
  return dispatchKernel(ctx, k, { dims: { n }, u: [{ u32: n }], buffers: io, grid: n });
}
