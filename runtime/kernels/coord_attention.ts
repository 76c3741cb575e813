/**
 * Dispatch of the coordinate-attention kernel (decode and prefill attention against key slots that
 * carry their token coordinates; source and key-range format: compiler/codegen/coord_attention.ts,
 * the prefill ranges: compiler/analysis/key_ranges.ts): builds the kernel, packs its uniforms and
 * prepares one replayable dispatch. Browser-safe.
 */
import type { Bindings } from "../../dsl/eval.ts";
import { coordAttentionKernel } from "../../compiler/codegen/coord_attention.ts";
import { packUniforms } from "../../compiler/codegen/kernel_source.ts";
import { packSpecBindings, type SpecCode } from "../../compiler/codegen/wgsl_expr.ts";
import { uniformBuffer } from "../gpu/resources.ts";
import { type Dispatch, type KernelContext, prepare } from "../gpu/kernel.ts";

/** Shape and parameters of one call. */
export interface CoordAttentionShape {
  /** Sequences (grid z). */
  seqs: number;
  /** Query rows per sequence. */
  rows: number;
  /** Key slots per sequence. */
  slots: number;
  heads: number;
  kvHeads: number;
  headDim: number;
  /** Query rows per workgroup. */
  tileQ: number;
  /** Invocations per query row (see `CoordAttentionParams.split`). Default 1. */
  split?: number;
  /** Runtime parameter values of the spec. */
  bindings: Bindings;
}

/** Prepares one call; `ranges` from `packRanges` (one list per query tile). */
export function coordAttention(
  ctx: KernelContext,
  spec: SpecCode,
  io: {
    q: GPUBuffer;
    k: GPUBuffer;
    v: GPUBuffer;
    qinfo: GPUBuffer;
    kcoords: GPUBuffer;
    ranges: GPUBuffer;
    o: GPUBuffer;
    /** Segment tables of the spec (`packSpecBindings(...).tables`), when its mask reads any. */
    tables?: GPUBuffer;
  },
  s: CoordAttentionShape,
): Dispatch {
  const kernel = coordAttentionKernel({
    spec,
    headDim: s.headDim,
    tileQ: s.tileQ,
    split: s.split,
  });
  if (s.heads % s.kvHeads !== 0) {
    throw new RangeError(`kvHeads ${s.kvHeads} must divide heads ${s.heads}`);
  }
  const packed = packSpecBindings(spec, s.bindings);
  const U = uniformBuffer(
    ctx.gpu.device,
    packUniforms(kernel.uniforms, {
      rows: s.rows,
      S: s.slots,
      H: s.heads,
      HKV: s.kvHeads,
      scale: 1 / Math.sqrt(s.headDim),
      tq: s.tileQ,
      pad0: 0,
      pad1: 0,
    }, packed.fields),
    kernel.label,
  );
  const buffers: Record<string, GPUBuffer> = { U, ...io };
  if (io.tables) buffers.mask_tables = io.tables;
  return prepare(ctx, { ...kernel, bindings: ["U", ...kernel.bindings] }, {
    buffers,
    grid: [Math.ceil(s.rows / s.tileQ), s.heads, s.seqs],
    owned: [U],
  });
}
