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
import { type Dispatch, dispatchKernel, type KernelContext, makeKernel } from "../gpu/kernel.ts";

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

/** The kernel of one direction: one invocation per pair (token, head, e < d/2). */
function ropeKernel(direction: "forward" | "backward") {
  const fwd = direction === "forward";
  return makeKernel({
    key: `rope_${direction}`,
    uniforms: { u: "batch: u32, tokens: u32, heads: u32, half: u32, rotate: u32" },
    reads: { inp: "f32", pos: "u32", table: "f32" },
    writes: { out: "f32" },
    main: {
      count: "u.batch * u.tokens * u.heads * u.half",
      body: `
  // i enumerates (b, t, h, e) token-major
  let e = i % u.half;
  let h = (i / u.half) % u.heads;
  let bt = i / (u.half * u.heads);
  let t = bt % u.tokens;
  let b = bt / u.tokens;
  let d = 2u * u.half;
  let tok = bt * u.heads * d + h * d + e;
  let head = ((b * u.heads + h) * u.tokens + t) * d + e;
  let src = ${fwd ? "tok" : "head"};
  let dst = ${fwd ? "head" : "tok"};
  let x1 = inp[src];
  let x2 = inp[src + u.half];
  if (u.rotate == 0u) { out[dst] = x1; out[dst + u.half] = x2; return; }
  let cs = pos[t] * u.half + e;
  let co = table[2u * cs];
  let si = ${fwd ? "" : "-"}table[2u * cs + 1u];
  out[dst] = x1 * co - x2 * si;
  out[dst + u.half] = x2 * co + x1 * si;`,
    },
  });
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

/** Buffers of a RoPE call: input, position ids, the `ropeTable`, output. */
export type RopeIo = { inp: GPUBuffer; pos: GPUBuffer; table: GPUBuffer; out: GPUBuffer };

function ropeDispatch(
  ctx: KernelContext,
  dir: "forward" | "backward",
  io: RopeIo,
  s: RopeShape,
): Dispatch {
  const { batch, tokens, heads, headDim } = s;
  if (s.headDim % 2 !== 0) throw new RangeError(`RoPE head dim must be even, got ${s.headDim}`);
  const half = s.headDim / 2;
  return dispatchKernel(ctx, ropeKernel(dir), {
    dims: { batch, tokens, heads, headDim },
    u: [
      { u32: s.batch },
      { u32: s.tokens },
      { u32: s.heads },
      { u32: half },
      { u32: s.rotate === false ? 0 : 1 },
    ],
    buffers: io,
    grid: s.batch * s.tokens * s.heads * half,
  });
}

/**
 * inp is (B, N, H, d) (a projection's rows), pos is (N,) u32 position ids, table from
 * `ropeTable` covering every id, out is (B, H, N, d) (the attention kernels' order).
 */
export function ropeForward(ctx: KernelContext, io: RopeIo, shape: RopeShape): Dispatch {
  return ropeDispatch(ctx, "forward", io, shape);
}

/** inp is dout (B, H, N, d), out is dinp (B, N, H, d): the transpose of `ropeForward`. */
export function ropeBackward(ctx: KernelContext, io: RopeIo, shape: RopeShape): Dispatch {
  return ropeDispatch(ctx, "backward", io, shape);
}
