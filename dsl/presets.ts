/**
 * The preset attention patterns. The four PHD presets are exactly docs/DESIGN.md 1.2 (a contract the
 * mask JSON is tested against); sliding window, prefix-LM and document masking show that the DSL
 * is general. Each factory returns a spec whose name carries its parameters.
 */
import { and, type BoolExpr, or } from "./expr.ts";
import { type AttentionSpec, defineAttention, type MaskContext } from "./spec.ts";

/** Paper Eq. 2: originals see earlier originals; the copies of a position see earlier copies. */
export function phdBase({ q, k }: MaskContext): BoolExpr {
  return or(and(k.original, k.pos.lt(q.pos)), and(k.pos.eq(q.pos), k.copy.le(q.copy)));
}

/** Vanilla causal attention `m <= n`. Copies of one position see each other (`"copies"`). */
export function causal(o: { K?: number } = {}): AttentionSpec {
  return defineAttention({
    name: "causal",
    K: o.K ?? 1,
    bidirectional: "copies",
    description: "vanilla causal attention: key position <= query position",
    mask: ({ q, k }) => k.pos.le(q.pos),
  });
}

/** PHD (paper Eq. 2): hidden decoding tokens' KV is dropped as soon as their token is done. */
export function phd(o: { K?: number } = {}): AttentionSpec {
  return defineAttention({
    name: "phd",
    K: o.K ?? 3,
    description: "PHD: originals causal; copies of a position see its earlier copies",
    mask: phdBase,
  });
}

/** PHD-SWA(W): PHD plus a window of the last W hidden tokens (counting the query itself). */
export function phdSwa(o: { K?: number; W?: number } = {}): AttentionSpec {
  return defineAttention({
    name: "phd_swa",
    K: o.K ?? 3,
    params: { W: o.W ?? 16 },
    description: "PHD plus hidden-to-hidden sliding window of W hidden tokens",
    mask: (ctx) => or(phdBase(ctx), swaPairs(ctx)),
  });
}

/** PHD-CSWA(W, C): PHD-SWA whose extra pairs must also share a chunk of C positions. */
export function phdCswa(o: { K?: number; W?: number; C?: number } = {}): AttentionSpec {
  return defineAttention({
    name: "phd_cswa",
    K: o.K ?? 3,
    params: { W: o.W ?? 16, C: o.C ?? 32 },
    description: "PHD plus hidden-to-hidden window of W, restricted to chunks of C positions",
    mask: (ctx) =>
      or(phdBase(ctx), and(swaPairs(ctx), ctx.k.chunk(ctx.p.C).eq(ctx.q.chunk(ctx.p.C)))),
  });
}

/** The extra pairs of PHD-SWA: both hidden, `h(j,n) - W < h(i,m) <= h(j,n)`. */
export function swaPairs({ q, k, p }: MaskContext): BoolExpr {
  return and(
    q.hidden,
    k.hidden,
    q.hiddenIndex.sub(p.W).lt(k.hiddenIndex),
    k.hiddenIndex.le(q.hiddenIndex),
  );
}

/**
 * SHD (Sequential Hidden Decoding style): full causal attention over the interleaved expanded
 * sequence `(pos, copy)`, so every copy's KV stays for the whole sequence (K times vanilla's
 * cache). Pair it with per-copy embeddings (`phd.embeddings: "per-copy"`) for the SHD model.
 */
export function shd(o: { K?: number } = {}): AttentionSpec {
  return defineAttention({
    name: "shd",
    K: o.K ?? 3,
    description: "SHD: every token sees every earlier (pos, copy) token; all copies' KV kept",
    mask: ({ q, k }) => or(k.pos.lt(q.pos), and(k.pos.eq(q.pos), k.copy.le(q.copy))),
  });
}

/** Vanilla sliding-window attention over positions: `n - W < m <= n`. */
export function slidingWindow(o: { W?: number } = {}): AttentionSpec {
  return defineAttention({
    name: "sliding_window",
    params: { W: o.W ?? 16 },
    description: "causal sliding window of W positions including the query",
    mask: ({ q, k, p }) => and(k.pos.le(q.pos), q.pos.sub(p.W).lt(k.pos)),
  });
}

/** Prefix-LM: the first P positions attend each other bidirectionally; the rest is causal. */
export function prefixLm(o: { P?: number } = {}): AttentionSpec {
  return defineAttention({
    name: "prefix_lm",
    params: { P: o.P ?? 8 },
    bidirectional: true,
    description: "bidirectional over a prefix of P positions, causal after it",
    mask: ({ q, k, p }) => or(k.pos.le(q.pos), k.pos.lt(p.P)),
  });
}

/** Document masking: causal attention within each document (a table of document starts). */
export function documentMask(o: { docs?: number[] } = {}): AttentionSpec {
  return defineAttention({
    name: "document",
    tables: { docs: o.docs ?? [0] },
    description: "causal attention that never crosses a document boundary",
    mask: ({ q, k }) => and(k.pos.le(q.pos), k.segment("docs").eq(q.segment("docs"))),
  });
}

/** Preset factories by CLI name (docs/DESIGN.md 3), each taking the usual K/W/C overrides. */
export const PRESETS: Readonly<Record<string, () => AttentionSpec>> = {
  "causal": () => causal(),
  "phd": () => phd(),
  "phd-swa": () => phdSwa(),
  "phd-cswa": () => phdCswa(),
  "shd": () => shd(),
  "sliding-window": () => slidingWindow(),
  "prefix-lm": () => prefixLm(),
  "document": () => documentMask(),
};
