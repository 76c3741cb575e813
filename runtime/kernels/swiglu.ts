/**
 * SwiGLU activation of the Llama MLP: `h = silu(gate) · up`, `silu(g) = g · sigmoid(g)`, forward
 * and backward, elementwise over the (R, I) outputs of gate_proj and up_proj. Browser-safe.
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
const HEAD = `
struct U { n: u32 }
@group(0) @binding(0) var<uniform> u: U;
${LINEAR_INDEX_WGSL}
fn sigmoid(x: f32) -> f32 { return 1.0 / (1.0 + exp(-x)); }`;
const ENTRY = `@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u,
        @builtin(local_invocation_index) l: u32) {
  let i = linear_index(wg, nwg, l, ${WG}u);
  if (i >= u.n) { return; }`;

/** Forward and backward kernels. */
export function swigluKernels(): { forward: Kernel; backward: Kernel } {
  return {
    forward: {
      key: "swiglu_forward",
      label: "swiglu_forward",
      bindings: ["u", "gate", "up", "out"],
      code: `${HEAD}
@group(0) @binding(1) var<storage, read> gate: array<f32>;
@group(0) @binding(2) var<storage, read> up: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;
${ENTRY}
  let g = gate[i];
  out[i] = g * sigmoid(g) * up[i];
}`,
    },
    // d silu(g)/dg = s·(1 + g·(1 - s)), s = sigmoid(g)
    backward: {
      key: "swiglu_backward",
      label: "swiglu_backward",
      bindings: ["u", "dout", "gate", "up", "dgate", "dup"],
      code: `${HEAD}
@group(0) @binding(1) var<storage, read> dout: array<f32>;
@group(0) @binding(2) var<storage, read> gate: array<f32>;
@group(0) @binding(3) var<storage, read> up: array<f32>;
@group(0) @binding(4) var<storage, read_write> dgate: array<f32>;
@group(0) @binding(5) var<storage, read_write> dup: array<f32>;
${ENTRY}
  let g = gate[i];
  let s = sigmoid(g);
  let d = dout[i];
  dgate[i] = d * up[i] * s * (1.0 + g * (1.0 - s));
  dup[i] = d * g * s;
}`,
    },
  };
}

/** gate, up and out are (R, I); n = R·I. */
export function swigluForward(
  ctx: KernelContext,
  io: { gate: GPUBuffer; up: GPUBuffer; out: GPUBuffer },
  n: number,
): Dispatch {
  checkDims("swiglu_forward", { n });
  const k = swigluKernels().forward, u = uniforms(ctx, [{ u32: n }], k.label);
  return prepare(ctx, k, { buffers: { u, ...io }, grid: grid1d(n, WG), owned: [u] });
}

/** dout, gate, up, dgate and dup are (R, I); n = R·I. */
export function swigluBackward(
  ctx: KernelContext,
  io: { dout: GPUBuffer; gate: GPUBuffer; up: GPUBuffer; dgate: GPUBuffer; dup: GPUBuffer },
  n: number,
): Dispatch {
  checkDims("swiglu_backward", { n });
  const k = swigluKernels().backward, u = uniforms(ctx, [{ u32: n }], k.label);
  return prepare(ctx, k, { buffers: { u, ...io }, grid: grid1d(n, WG), owned: [u] });
}
