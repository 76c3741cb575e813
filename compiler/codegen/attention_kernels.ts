/**
 * Flash-attention kernel sources built from a parameter object (spec, head dim, tile sizes,
 * layout, storage dtype, variant): the one place the configuration's defaults live
 * (`attentionDefaults`, read by `FlashAttention`, `deno task compile` and the autotuner), the
 * shared preamble (constants, the uniform table `ATTENTION_UNIFORMS`, bindings, the layout's
 * `token_at`, the spec's mask/score functions), the cache key covering everything baked into the
 * WGSL, and the tile-list packing. Runtime values (L, heads, W, C, tables, tile classes) travel in
 * buffers, so they never change the source. Bodies: attention_wgsl.ts.
 */
import type { Layout } from "../layout.ts";
import { exprCode, type SpecCode, specUniformFields, tableNames } from "./wgsl_expr.ts";
import { backwardDkvBody, backwardDqBody, forwardBody } from "./attention_wgsl.ts";
import {
  checkHeadDim,
  interfaceWgsl,
  type KernelSource,
  type StorageBinding,
  type UniformField,
  type UniformLayout,
  uniformLayout,
  uniformTable,
} from "./kernel_source.ts";

/** The three passes. */
export type AttentionKernelKind = "forward" | "backward_dq" | "backward_dkv";
/** `fused` walks a list of non-empty tiles (full ones skip the mask); `dense` visits every tile. */
export type KernelVariant = "fused" | "dense";
/** Element type of q, k, v, o and their gradients in memory (arithmetic is always f32). */
export type StorageType = "f32" | "f16";
/**
 * How streamed rows reach an invocation: `direct` from storage (no barriers: the fast and quickly
 * compiled choice on llvmpipe) or staged through `workgroup` memory (shared loads, real GPUs).
 */
export type Staging = "direct" | "workgroup";

/** Everything baked into a kernel's WGSL. */
export interface AttentionKernelParams {
  /** The spec's expressions and K (parameter values are runtime, only their names are baked). */
  spec: SpecCode;
  /** Head dimension, a multiple of 4. */
  headDim: number;
  /** Query rows per tile (forward/dQ: invocations per workgroup). */
  tileQ: number;
  /** Key rows per tile. */
  tileK: number;
  /**
   * Query rows per invocation in the forward and dQ passes (a register block: every streamed key
   * row is loaded once for all of them); divides `tileQ`, the workgroup has tileQ/blockQ
   * invocations. Default 1.
   */
  blockQ?: number;
  /** Key rows per invocation in the dK/dV pass; divides `tileK`. Default 1. */
  blockK?: number;
  /** Storage order of the K*L tokens. */
  layout: Layout;
  /** Element type of q, k, v, o and gradients in memory (the WGSL's `alias T`). */
  dtype: StorageType;
  /** `fused` reads the packed tile list (binding `tiles`); `dense` visits every tile. */
  variant: KernelVariant;
  /** Streamed rows straight from storage (`direct`) or staged in workgroup memory. */
  staging: Staging;
}

/** Device limits a kernel is checked against when built. */
export interface KernelLimits {
  /** Bytes of workgroup memory a kernel may use (the staged tiles' `workgroupBytes`). */
  maxComputeWorkgroupStorageSize: number;
  /** Invocations a workgroup may have (a tile's rows over its register block). */
  maxComputeInvocationsPerWorkgroup: number;
}

/** One pass's kernel, ready for a pipeline. */
export interface AttentionKernel extends KernelSource {
  /** The pass it runs. */
  kind: AttentionKernelKind;
  /** Bytes of workgroup memory used. */
  workgroupBytes: number;
  /** Its uniform buffer: `ATTENTION_UNIFORMS`, then the spec's parameters and table extents. */
  uniforms: UniformLayout<AttentionUniform>;
}

/** Tile sizes and register blocks of a kernel configuration. */
export interface TileShape {
  tileQ: number;
  tileK: number;
  blockQ: number;
  blockK: number;
}

/** WebGPU's guaranteed values of `KernelLimits`: what defaults assume without a device. */
export const WEBGPU_KERNEL_LIMITS: KernelLimits = {
  maxComputeWorkgroupStorageSize: 16384,
  maxComputeInvocationsPerWorkgroup: 256,
};

/**
 * What a configuration's defaults are chosen for: the adapter class (runtime/gpu/device.ts
 * `AdapterClass`: `cpu` for a CPU rasterizer such as llvmpipe, `gpu` otherwise) and the device's
 * limits. Without one, defaults are the cpu class's under WebGPU's guaranteed limits.
 */
export interface KernelTarget {
  /** `cpu`: rows streamed from storage, register blocks; `gpu`: staged rows, wide workgroups. */
  adapterClass: "cpu" | "gpu";
  /** The device's limits: the `gpu` class's staged tiles are sized to fit them. */
  limits: KernelLimits;
}

/** Workgroup memory of the staged passes' shared tiles of `t` rows (the dK/dV pass's, the most). */
function stagedBytes(t: number, headDim: number): number {
  return 2 * t * headDim * 4 + 4 * t * 4;
}

/**
 * Default tiles. Streaming from storage (`direct`, the cpu class's choice): 32 x 32, an
 * invocation owns 4 query rows (forward, dQ) or 2 key rows (dK/dV), so a workgroup is 8 or 16
 * invocations (one or two AVX2 SIMD rows on llvmpipe) and every streamed row serves several rows.
 * With workgroup staging (the gpu class: one row per invocation, wide workgroups) tiles are the
 * largest power of two whose two shared d-wide tiles fit the workgroup memory: without a device's
 * `limits` at most 32 in WebGPU's guaranteed 16 KiB (e.g. 16 x 16 at d = 64), with them at most
 * 64 and the device's invocation limit in its own memory (64 x 64 at d = 64 in 48 KiB).
 */
export function defaultTiles(
  headDim: number,
  staging: Staging = "direct",
  limits?: KernelLimits,
): TileShape {
  checkHeadDim(headDim);
  if (staging === "direct") return { tileQ: 32, tileK: 32, blockQ: 4, blockK: 2 };
  const bytes = limits?.maxComputeWorkgroupStorageSize ??
    WEBGPU_KERNEL_LIMITS.maxComputeWorkgroupStorageSize;
  let t = limits ? 64 : 32;
  while (limits && t > limits.maxComputeInvocationsPerWorkgroup) t /= 2;
  while (t > 4 && stagedBytes(t, headDim) > bytes) t /= 2;
  return { tileQ: t, tileK: t, blockQ: 1, blockK: 1 };
}

/** The largest divisor of `tile` that is at most `block` (a block must divide its tile). */
export function fitBlock(tile: number, block: number): number {
  let b = Math.max(1, Math.min(block, tile));
  while (tile % b !== 0) b--;
  return b;
}

/** The choices of a kernel configuration besides spec and head dim; each one may be left out. */
export interface AttentionChoices {
  /** Token storage order. Default `interleaved`. */
  layout?: Layout;
  /** Storage type of q, k, v, o and gradients. Default `f32`; `f16` needs `shader-f16`. */
  dtype?: StorageType;
  /** `fused` (tile skipping, default) or `dense` (every tile, mask everywhere: the baseline). */
  variant?: KernelVariant;
  /**
   * Streamed rows from storage (`direct`, the cpu class's default) or via workgroup memory (the
   * gpu class's).
   */
  staging?: Staging;
  /** Query rows per tile. Default from `defaultTiles(headDim, staging, limits)`. */
  tileQ?: number;
  /** Key rows per tile. Default from `defaultTiles(headDim, staging, limits)`. */
  tileK?: number;
  /**
   * Query rows per invocation (forward, dQ). Default from `defaultTiles`, reduced to a divisor of
   * `tileQ`.
   */
  blockQ?: number;
  /**
   * Key rows per invocation (dK/dV). Default from `defaultTiles`, reduced to a divisor of `tileK`.
   */
  blockK?: number;
}

/** The defaults of the choices that are not tile shapes (the cpu class's: no target given). */
export const ATTENTION_DEFAULTS = {
  layout: "interleaved",
  dtype: "f32",
  variant: "fused",
  staging: "direct",
} as const satisfies AttentionChoices;

/**
 * Every choice of a configuration, the missing ones filled in: the one definition of the default
 * kernel, shared by `FlashAttention`, `deno task compile` and the autotuner's default candidate.
 * A `gpu` target stages streamed rows through workgroup memory, tiles sized from its limits.
 */
export function attentionDefaults(
  headDim: number,
  c: AttentionChoices = {},
  target?: KernelTarget,
): Required<AttentionChoices> {
  const staging = c.staging ??
    (target?.adapterClass === "gpu" ? "workgroup" : ATTENTION_DEFAULTS.staging);
  const t = defaultTiles(headDim, staging, target?.limits);
  const tileQ = c.tileQ ?? t.tileQ, tileK = c.tileK ?? t.tileK;
  return {
    tileQ,
    tileK,
    blockQ: c.blockQ ?? fitBlock(tileQ, t.blockQ),
    blockK: c.blockK ?? fitBlock(tileK, t.blockK),
    layout: c.layout ?? ATTENTION_DEFAULTS.layout,
    dtype: c.dtype ?? ATTENTION_DEFAULTS.dtype,
    variant: c.variant ?? ATTENTION_DEFAULTS.variant,
    staging,
  };
}

/**
 * The kernel parameters of a spec, head dim and choices (`attentionDefaults` for the rest, for
 * `target` when given).
 */
export function attentionParams(
  spec: SpecCode,
  headDim: number,
  c: AttentionChoices = {},
  target?: KernelTarget,
): AttentionKernelParams {
  return { spec, headDim, ...attentionDefaults(headDim, c, target) };
}

/** The pipeline cache key: every field that changes the WGSL, and nothing else. */
export function attentionKernelKey(kind: AttentionKernelKind, p: AttentionKernelParams): string {
  return JSON.stringify({
    kind,
    K: p.spec.K,
    mask: p.spec.mask,
    score: p.spec.score ?? null,
    uniforms: specUniformFields(p.spec),
    d: p.headDim,
    tileQ: p.tileQ,
    tileK: p.tileK,
    block: kind === "backward_dkv" ? p.blockK ?? 1 : p.blockQ ?? 1,
    layout: p.spec.K === 1 ? "interleaved" : p.layout,
    dtype: p.dtype,
    variant: p.variant,
    staging: p.staging,
  });
}

/** The three passes, in the order a training step runs them. */
export const ATTENTION_KINDS: readonly AttentionKernelKind[] = [
  "forward",
  "backward_dq",
  "backward_dkv",
];

/** What bounds the loops of a run: tokens per sequence, and query heads per key/value head. */
export interface LoopRun {
  /** Tokens per sequence (K·L). */
  N: number;
  /** Query heads per key/value head (the dK/dV pass walks the query tiles once for each). */
  group: number;
}

/**
 * The most loop passes one invocation of a pass makes on a run: every iteration of every loop
 * plus each loop's final exit test, as Mesa's loop limiter counts them (runtime/gpu/device.ts
 * `GpuContext.loopBudget`). The walk is bounded by every tile of the other side (a fused kernel's
 * list is shorter); per tile, the staging loops and the loop over its rows. Head-dim columns and
 * the rows of a block are straight-line code (attention_wgsl.ts), so nothing else loops.
 */
export function attentionLoopPasses(
  kind: AttentionKernelKind,
  p: AttentionKernelParams,
  run: LoopRun,
): number {
  const dkv = kind === "backward_dkv";
  const WG = dkv ? p.tileK / (p.blockK ?? 1) : p.tileQ / (p.blockQ ?? 1);
  const rows = dkv ? p.tileQ : p.tileK; // streamed rows per tile
  const tiles = Math.ceil(run.N / rows);
  const loop = (n: number) => n + 1;
  const stage = p.staging === "workgroup"
    ? loop(Math.ceil((rows * p.headDim) / 4 / WG)) + loop(Math.ceil(rows / WG))
    : 0;
  const walk = loop(tiles) + tiles * (stage + loop(rows));
  return dkv ? loop(run.group) + run.group * walk : walk;
}

/**
 * Why a run would take a pass past a device's loop budget (undefined: no budget, or within it).
 * Past it the driver ends the loops early without an error, so such a run is refused, never run.
 */
export function attentionLoopProblem(
  p: AttentionKernelParams,
  run: LoopRun,
  budget: number | undefined,
): string | undefined {
  if (budget === undefined) return undefined;
  for (const kind of ATTENTION_KINDS) {
    const n = attentionLoopPasses(kind, p, run);
    if (n >= budget) {
      return `the ${kind} pass at N = ${run.N} tokens (${run.group} query heads per KV head) ` +
        `makes up to ${n} loop passes per invocation, past this adapter's loop budget ${budget}`;
    }
  }
  return undefined;
}

/** The names of `ATTENTION_UNIFORMS`, in buffer order. */
export const ATTENTION_UNIFORM_NAMES = [
  "N",
  "L",
  "H",
  "HKV",
  "scale",
  "rows",
  "cols",
  "tq",
  "tk",
] as const;

/** A fixed uniform field of the flash-attention kernels. */
export type AttentionUniform = (typeof ATTENTION_UNIFORM_NAMES)[number];

/**
 * The fixed uniform fields of the flash-attention kernels, before the spec's: tokens per sequence
 * (N = K*L), positions, query and key/value heads, the softmax scale 1/sqrt(d), the query and key
 * tiles of the grid, and the tile sizes. `tq` and `tk` repeat the baked tile sizes: loops bounded
 * by them are not unrolled (see attention_wgsl.ts).
 */
export const ATTENTION_UNIFORMS: readonly UniformField<AttentionUniform>[] = uniformTable(
  ATTENTION_UNIFORM_NAMES,
  { scale: "f32" },
);

/** The uniform layout of a spec's flash-attention kernels (every pass shares it). */
export function attentionUniforms(spec: SpecCode): UniformLayout<AttentionUniform> {
  return uniformLayout(ATTENTION_UNIFORMS, spec);
}

/** A compressed tile list, as `tileLists` of compiler/analysis/tiles.ts returns it. */
export interface TileList {
  offsets: Uint32Array;
  index: Uint32Array;
  classes: Uint8Array;
}

/**
 * Packs a tile list into one u32 array as the fused kernels read it: `outer + 1` absolute
 * offsets, then one entry per non-empty tile, `tile << 2 | class` (class 2 = full).
 */
export function packTileList(t: TileList): Uint32Array {
  const outer = t.offsets.length - 1, base = outer + 1;
  const out = new Uint32Array(base + t.index.length);
  for (let a = 0; a <= outer; a++) out[a] = base + t.offsets[a];
  for (let e = 0; e < t.index.length; e++) out[base + e] = (t.index[e] << 2) | t.classes[e];
  return out;
}

/**
 * `token_at(s) -> (copy, pos)` of storage index s, from the layout formula (compiler/layout.ts).
 * Unsigned division: signed `/` and `%` by a constant made llvmpipe take seconds per kernel.
 */
function tokenAtWgsl(layout: Layout, K: number): string {
  const body = K === 1 ? "return vec2<i32>(0, s);" : layout === "interleaved"
    ? `let u = u32(s);
  return vec2<i32>(i32(u % ${K}u), i32(u / ${K}u));`
    : `if (s < U.L) {
    return vec2<i32>(0, s);
  }
  let hid = u32(s - U.L);
  return vec2<i32>(1 + i32(hid % ${K - 1}u), i32(hid / ${K - 1}u));`;
  return `// (copy, pos) of the token at storage index s >= 0 (${
    K === 1 ? "K = 1" : layout
  } layout).
fn token_at(s: i32) -> vec2<i32> {
  ${body}
}`;
}

/**
 * The storage buffers of each pass, in binding order from 1: those it reads, then those it writes.
 * `lse` and `delta` are f32 per row; the others are rows of d values of the storage type.
 */
const BINDINGS: Record<AttentionKernelKind, { read: string[]; write: string[] }> = {
  forward: { read: ["q", "k", "v"], write: ["o", "lse"] },
  backward_dq: { read: ["q", "k", "v", "o", "dout", "lse"], write: ["delta", "dq"] },
  backward_dkv: { read: ["q", "k", "v", "dout", "lse", "delta"], write: ["dk", "dv"] },
};

/**
 * Builds one kernel. Asserts the tile arithmetic: d a multiple of 4, tiles within the device's
 * invocation and workgroup-memory limits.
 */
export function buildAttentionKernel(
  kind: AttentionKernelKind,
  p: AttentionKernelParams,
  limits?: KernelLimits,
): AttentionKernel {
  checkHeadDim(p.headDim);
  const { tileQ: TQ, tileK: TK, headDim: d } = p;
  const BQ = p.blockQ ?? 1, BK = p.blockK ?? 1;
  for (const [n, v] of [["tileQ", TQ], ["tileK", TK]] as const) {
    if (!Number.isInteger(v) || v < 1 || v > 256) {
      throw new RangeError(`${n} must be an integer in [1, 256], got ${v}`);
    }
  }
  for (const [n, v, t] of [["blockQ", BQ, TQ], ["blockK", BK, TK]] as const) {
    if (!Number.isInteger(v) || v < 1 || v > 16 || t % v !== 0) {
      throw new RangeError(`${n} must be an integer in [1, 16] dividing its tile ${t}, got ${v}`);
    }
  }
  const dkv = kind === "backward_dkv";
  const other = dkv ? TQ : TK; // rows held in workgroup memory
  const R = dkv ? BK : BQ;
  const workgroupSize = (dkv ? TK : TQ) / R;
  const workgroupBytes = p.staging === "direct"
    ? 0
    : 2 * other * d * 4 + (kind === "backward_dkv" ? 4 : 2) * other * 4;
  if (limits) {
    if (workgroupSize > limits.maxComputeInvocationsPerWorkgroup) {
      throw new RangeError(
        `${kind} tile of ${workgroupSize} rows exceeds maxComputeInvocationsPerWorkgroup ` +
          `${limits.maxComputeInvocationsPerWorkgroup}: use smaller tiles`,
      );
    }
    if (workgroupBytes > limits.maxComputeWorkgroupStorageSize) {
      throw new RangeError(
        `${kind} with tiles ${TQ}x${TK} at d = ${d} needs ${workgroupBytes} bytes of workgroup ` +
          `memory, the device allows ${limits.maxComputeWorkgroupStorageSize}: use smaller tiles`,
      );
    }
  }
  const e = exprCode(p.spec);
  const fused = p.variant === "fused";
  const element = (name: string) => name === "lse" || name === "delta" ? "f32" : "vec4<T>";
  const { read, write } = BINDINGS[kind];
  const storage: StorageBinding[] = [
    ...read.map((name) => ({ name, access: "read" as const, element: element(name) })),
    ...write.map((name) => ({ name, access: "read_write" as const, element: element(name) })),
  ];
  if (fused) storage.push({ name: "tiles", access: "read", element: "u32" });
  if (e.usesTables) storage.push({ name: "mask_tables", access: "read", element: "i32" });
  const uniforms = attentionUniforms(p.spec);
  const body = { forward: forwardBody, backward_dq: backwardDqBody, backward_dkv: backwardDkvBody }[
    kind
  ]({ fused, staged: p.staging === "workgroup", R, D4: d / 4 });
  const label = `${kind}_${p.variant}_${p.staging}_${p.layout}_d${d}_${TQ}x${TK}_r${R}_${p.dtype}`;
  const code = `// ${label}: generated by compiler/codegen/attention_kernels.ts; mask tables: ${
    tableNames(p.spec).join(", ") || "none"
  }
${p.dtype === "f16" ? "enable f16;\n" : ""}alias T = ${p.dtype};
const D4 = ${d / 4};
const TQ = ${TQ};
const TK = ${TK};
// Invocations per workgroup (each owns ${R} ${dkv ? "key" : "query"} rows of the tile).
const WG = ${workgroupSize};
// Stands for -infinity (WGSL has no infinite literals); exp(NEG_BIG - x) is exactly 0.
const NEG_BIG = -3.0e38;

${interfaceWgsl(uniforms, storage)}

${tokenAtWgsl(p.layout, p.spec.K)}

${e.helpers ? e.helpers + "\n\n" : ""}${e.mask}

${kind === "forward" ? e.score : e.scoreGrad}

${body}`;
  return {
    kind,
    key: attentionKernelKey(kind, p),
    label,
    code,
    entryPoint: "main",
    workgroupSize,
    bindings: storage.map((b) => b.name),
    uniforms,
    workgroupBytes,
  };
}
