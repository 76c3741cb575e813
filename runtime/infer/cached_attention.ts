/**
 * The decoder's attention step, plugged into the shared block (runtime/model/block.ts) for both
 * prefill and decode: RoPE on q and k with the rotated keys and the values written into their KV
 * slots with their `(copy, pos)` tags (runtime/kernels/kv_write.ts `ropeStore`), then the
 * coordinate kernel (runtime/kernels/coord_attention.ts; its WGSL is compiler/codegen's), which
 * evaluates the spec's own mask on those tags for every query row against the slots of its key
 * ranges (docs/DESIGN.md 1.4).
 * Also the decode step's tiling, and the mask's segment tables as the kernel binds them.
 * Browser-safe.
 */
import type { AttentionSpec } from "../../dsl/spec.ts";
import type { Bindings } from "../../dsl/eval.ts";
import { packSpecBindings, tableNames } from "../../compiler/codegen/wgsl_expr.ts";
import type { Dispatch, KernelContext } from "../gpu/kernel.ts";
import { type KeyRanges, openRanges } from "../../compiler/analysis/key_ranges.ts";
import { coordAttention } from "../kernels/coord_attention.ts";
import { ropeStore } from "../kernels/kv_write.ts";
import type { ModelConfig } from "../model/config.ts";
import { headDim } from "../model/params.ts";
import type { AttentionStep, BlockActs } from "../model/block.ts";
import type { KernelTarget } from "../../compiler/codegen/attention_kernels.ts";
import type { Op } from "../model/ops.ts";

/** A block's activations when decoding: the block's, plus the rotated queries (R, H·d). */
export interface CachedActs extends BlockActs {
  qr: GPUBuffer;
}

/** What stays fixed for a decoder: the spec, its parameter values and the model's shape. */
export interface CachedModel {
  ctx: KernelContext;
  spec: AttentionSpec;
  bindings: Bindings;
  config: ModelConfig;
  /** RoPE table (`ropeTable`) covering every position id. */
  rope: GPUBuffer;
  /** The mask's segment tables (`maskTables`), when it reads any. */
  maskTables?: GPUBuffer;
}

/** The rows of one recording (a prefill or the decode step) and where their keys go. */
export interface CachedRows {
  /** Sequences, and query rows of each (rows of the block: seqs · perSeq). */
  seqs: number;
  perSeq: number;
  /** `(copy, pos, slot)` i32 per row: each row's coordinates and the slot its key is stored in. */
  info: GPUBuffer;
  /** Per layer: the K and V buffers written and attended (`[seqs][slots][HKV][d]`). */
  ck: (layer: number) => GPUBuffer;
  cv: (layer: number) => GPUBuffer;
  /** `(copy, pos)` tag of every slot (`[seqs][slots][2]` i32). */
  coords: GPUBuffer;
  /** Slots per sequence. */
  slots: number;
  /** Key ranges per query tile (`packRanges`). */
  ranges: GPUBuffer;
  /** Query rows per workgroup, and invocations per row (see `decodeTiling`). */
  tileQ: number;
  split?: number;
  /** A dispatch recorded after each layer's attention (prefill copies its keys to the cache). */
  after?: (layer: number) => Dispatch;
}

/** The attention step over `rows`: store the rows' keys, then attend them with the spec's mask. */
export function cachedAttention(m: CachedModel, rows: CachedRows): AttentionStep<CachedActs> {
  const { ctx, spec, config: cfg } = m, d = headDim(cfg);
  const H = cfg.num_attention_heads, HKV = cfg.num_key_value_heads;
  return (layer, a) => {
    const ops: Op[] = [
      // qr (R, H·d) rotated; rotated keys and the values into their slots, with their tags
      ropeStore(ctx, {
        q: a.q,
        k: a.k,
        v: a.v,
        info: rows.info,
        table: m.rope,
        qr: a.qr,
        ck: rows.ck(layer),
        cv: rows.cv(layer),
        coords: rows.coords,
      }, {
        rows: rows.seqs * rows.perSeq,
        perSeq: rows.perSeq,
        heads: H,
        kvHeads: HKV,
        headDim: d,
        slots: rows.slots,
        K: spec.K,
        flattened: spec.positions === "flattened",
      }),
      // att (R, H·d) = the spec's masked attention of the rows against the slots
      coordAttention(ctx, spec, {
        q: a.qr,
        k: rows.ck(layer),
        v: rows.cv(layer),
        qinfo: rows.info,
        kcoords: rows.coords,
        ranges: rows.ranges,
        o: a.att,
        tables: m.maskTables,
      }, {
        seqs: rows.seqs,
        rows: rows.perSeq,
        slots: rows.slots,
        heads: H,
        kvHeads: HKV,
        headDim: d,
        tileQ: rows.tileQ,
        split: rows.split,
        bindings: m.bindings,
      }),
    ];
    if (rows.after) ops.push(rows.after(layer));
    return ops;
  };
}

/** Most invocations of a gpu-class decode workgroup: the split's partial states merge serially. */
const GPU_DECODE_LANES = 256;

/**
 * Tiling of the decode step's attention: a sequence's K query rows in one workgroup (`tileQ`), the
 * rest of the workgroup splitting the slots (`split` invocations per row, whose partial softmax
 * states merge through `4d + 8` bytes of workgroup memory each), and every query tile visiting
 * every slot (slots are in no particular order).
 *
 * - `cpu` class (or no target): up to 16 rows in a workgroup of 32 invocations, fewer when d is
 *   large, sized for WebGPU's guaranteed 16 KiB (one or two AVX2 SIMD rows on llvmpipe).
 * - `gpu` class: from the device's limits: up to 256 invocations (`GPU_DECODE_LANES`, the
 *   device's `maxComputeInvocationsPerWorkgroup` if less), all K rows in one tile where they fit,
 *   and the largest power-of-two split whose merge fits `maxComputeWorkgroupStorageSize`.
 */
export function decodeTiling(
  copies: number,
  d: number,
  target?: KernelTarget,
): { tileQ: number; split: number; ranges: KeyRanges } {
  const pow2 = (x: number) => 1 << Math.floor(Math.log2(Math.max(1, x)));
  const rows = 1 << Math.ceil(Math.log2(copies)), lane = 4 * d + 8;
  let tileQ: number, split: number;
  if (target?.adapterClass === "gpu") {
    const { maxComputeInvocationsPerWorkgroup: inv, maxComputeWorkgroupStorageSize: bytes } =
      target.limits;
    const lanes = pow2(Math.min(GPU_DECODE_LANES, inv));
    tileQ = Math.min(rows, lanes);
    split = pow2(Math.min(lanes / tileQ, bytes / (lane * tileQ)));
  } else {
    tileQ = Math.min(16, rows);
    split = Math.max(1, Math.floor(Math.min(32, pow2(16384 / lane)) / tileQ));
  }
  return { tileQ, split, ranges: openRanges(Math.ceil(copies / tileQ)) };
}

/** The spec's segment tables packed for the mask (undefined when the mask reads none). */
export function maskTables(spec: AttentionSpec, b: Bindings): Int32Array | undefined {
  if (tableNames(spec).length === 0) return undefined;
  return packSpecBindings(spec, b).tables;
}
