/**
 * Rotary position embedding, Hugging Face "rotate_half" convention (dim i paired with i + d/2,
 * frequency theta^(-2i/d)), fused with the head transpose the attention kernels need: forward reads
 * a projection's output token-major (B, N, H, d) and writes head-major (B, H, N, d); backward reads
 * a head-major gradient and writes it token-major, rotated by the inverse angle. With `rotate`
 * off the same kernels are plain transposes (values, and the attention output on its way to
 * o_proj). Positions come from a per-token id buffer (shared or flattened PHD positions, any
 * storage layout); cos/sin come from a table computed on the host in float64, so large
 * position·frequency products lose no accuracy in f32. Browser-safe.
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

/**
 * cos/sin table: `table[(p * d/2 + i) * 2 + {0: cos, 1: sin}]` of angle `p · theta^(-2i/d)` for
 * p in [0, positions), computed in float64.
 */
export function ropeTable(positions: number, headDim: number, theta = 10000): Float32Array {
  if (headDim % 2 !== 0) throw new RangeError(`RoPE head dim must be even, got ${headDim}`);
  const half = headDim / 2, out = new Float32Array(positions * half * 2);
  for (let p = 0; p < positions; p++) {
    for (let i = 0; i < half; i++) {
      const a = p * Math.pow(theta, -2 * i / headDim);
      out[(p * half + i) * 2] = Math.cos(a);
      out[(p * half + i) * 2 + 1] = Math.sin(a);
    }
  }
  return out;
}

/** The kernel of one direction: one invocation per pair (token, head, i < d/2). */
export function ropeKernel(direction: "forward" | "backward"): Kernel {
  const fwd = direction === "forward";
  const code = `
struct U { batch: u32, tokens: u32, heads: u32, half: u32, rotate: u32 }
@group(0) @binding(0) var<uniform> u: U;
@group(0) @binding(1) var<storage, read> inp: array<f32>;
@group(0) @binding(2) var<storage, read> pos: array<u32>;
@group(0) @binding(3) var<storage, read> table: array<f32>;
@group(0) @binding(4) var<storage, read_write> out: array<f32>;
${LINEAR_INDEX_WGSL}
@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u,
        @builtin(local_invocation_index) l: u32) {
  let idx = linear_index(wg, nwg, l, ${WG}u);
  if (idx >= u.batch * u.tokens * u.heads * u.half) { return; }
  // idx enumerates (b, t, h, i) token-major
  let i = idx % u.half;
  let h = (idx / u.half) % u.heads;
  let bt = idx / (u.half * u.heads);
  let t = bt % u.tokens;
  let b = bt / u.tokens;
  let d = 2u * u.half;
  let tok = bt * u.heads * d + h * d + i;
  let head = ((b * u.heads + h) * u.tokens + t) * d + i;
  let src = ${fwd ? "tok" : "head"};
  let dst = ${fwd ? "head" : "tok"};
  let x1 = inp[src];
  let x2 = inp[src + u.half];
  if (u.rotate == 0u) { out[dst] = x1; out[dst + u.half] = x2; return; }
  let cs = pos[t] * u.half + i;
  let co = table[2u * cs];
  let si = ${fwd ? "" : "-"}table[2u * cs + 1u];
  out[dst] = x1 * co - x2 * si;
  out[dst + u.half] = x2 * co + x1 * si;
}`;
  const key = `rope_${direction}`;
  return { key, label: key, code, bindings: ["u", "inp", "pos", "table", "out"] };
}

/** Shape of a RoPE call. */
export interface RopeShape {
  batch: number;
  /** Tokens per sequence in storage order (N = K·L for PHD). */
  tokens: number;
  heads: number;
  headDim: number;
  /** Apply the rotation (default true); false makes the kernel a head transpose. */
  rotate?: boolean;
}

function ropeDispatch(
  ctx: KernelContext,
  dir: "forward" | "backward",
  io: { inp: GPUBuffer; pos: GPUBuffer; table: GPUBuffer; out: GPUBuffer },
  s: RopeShape,
): Dispatch {
  checkDims(`rope_${dir}`, {
    batch: s.batch,
    tokens: s.tokens,
    heads: s.heads,
    headDim: s.headDim,
  });
  if (s.headDim % 2 !== 0) throw new RangeError(`RoPE head dim must be even, got ${s.headDim}`);
  const k = ropeKernel(dir), half = s.headDim / 2;
  const u = uniforms(ctx, [
    { u32: s.batch },
    { u32: s.tokens },
    { u32: s.heads },
    { u32: half },
    { u32: s.rotate === false ? 0 : 1 },
  ], k.label);
  return prepare(ctx, k, {
    buffers: { u, ...io },
    grid: grid1d(s.batch * s.tokens * s.heads * half, WG),
    owned: [u],
  });
}

/**
 * inp is (B, N, H, d) (a projection's rows), pos is (N,) u32 position ids, table from
 * `ropeTable` covering every id, out is (B, H, N, d) (the attention kernels' order).
 */
export function ropeForward(
  ctx: KernelContext,
  io: { inp: GPUBuffer; pos: GPUBuffer; table: GPUBuffer; out: GPUBuffer },
  shape: RopeShape,
): Dispatch {
  return ropeDispatch(ctx, "forward", io, shape);
}

/** inp is dout (B, H, N, d), out is dinp (B, N, H, d): the transpose of `ropeForward`. */
export function ropeBackward(
  ctx: KernelContext,
  io: { inp: GPUBuffer; pos: GPUBuffer; table: GPUBuffer; out: GPUBuffer },
  shape: RopeShape,
): Dispatch {
  return ropeDispatch(ctx, "backward", io, shape);
}
