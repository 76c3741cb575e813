/**
 * The compiler front end in one call: causality proof, KV retention, prefill set and tile classes
 * of a spec for a sequence length, plus the JSON summary that manifests and `--json` outputs carry.
 */
import type { AttentionSpec } from "../../dsl/spec.ts";
import { type Bindings, specBindings } from "../../dsl/eval.ts";
import { type Causality, checkCausality } from "./causality.ts";
import type { Layout } from "../layout.ts";
import { type PrefillPlan, prefillSet } from "./prefill.ts";
import { type CopyRetention, planRetention, type RetentionPlan } from "./retention.ts";
import { classifyTiles, type TileMap } from "./tiles.ts";

/** Options of `analyze`. */
export interface AnalyzeOptions {
  /** Sequence length in positions. */
  L: number;
  /** Tile edge (query rows = key columns), default 64. */
  tile?: number;
  /** Storage layout of the tile classes, default `grouped` (paper Fig. 3). */
  layout?: Layout;
  /** Prompt length for the prefill set, default L. */
  P?: number;
  /** Parameter values, default the spec's. */
  bindings?: Bindings;
}

/** Everything the compiler derives from a spec for one sequence length. */
export interface Analysis {
  /** The spec analysed. */
  spec: AttentionSpec;
  /** Sequence length in positions. */
  L: number;
  /** The causality proof (always causal: `analyze` throws otherwise). */
  causality: Causality;
  /** KV retention plan for L positions. */
  retention: RetentionPlan;
  /** Prefill set for a prompt of `AnalyzeOptions.P` positions. */
  prefill: PrefillPlan;
  /** Tile classes in the chosen storage layout. */
  tiles: TileMap;
  /** Milliseconds each part took. */
  ms: { causality: number; retention: number; prefill: number; tiles: number };
}

/** The most positions the analysis takes (2^18; at 2^20 it takes minutes and GBs). */
export const MAX_ANALYSIS_L = 1 << 18;

/** The most tiles a side the analysis classifies (2^14: 2^28 tile classes, 256 MiB). */
export const MAX_ANALYSIS_TILES = 1 << 14;

/**
 * Refuses, in one line, an analysis too large to run: an L beyond `MAX_ANALYSIS_L`, or a tile that
 * cuts K*L tokens into more than `MAX_ANALYSIS_TILES` tiles a side.
 */
export function checkAnalysisSize(K: number, L: number, tile: number): void {
  if (!Number.isInteger(L) || L < 1 || L > MAX_ANALYSIS_L) {
    throw new RangeError(
      `the analysis takes L in [1, ${MAX_ANALYSIS_L}] positions (its time and memory grow with ` +
        `L: about 7 s and 0.4 GB at the limit), got L = ${L}: use a smaller --L`,
    );
  }
  const N = K * L, side = Math.ceil(N / tile);
  if (side > MAX_ANALYSIS_TILES) {
    throw new RangeError(
      `a tile of ${tile} cuts ${N} tokens into ${side} x ${side} tiles, past the analysis's ` +
        `${MAX_ANALYSIS_TILES} a side: use a tile of at least ${Math.ceil(N / MAX_ANALYSIS_TILES)}`,
    );
  }
}

/**
 * Runs the whole analysis (after `checkAnalysisSize`). Throws the causality message if the spec
 * sees the future.
 */
export function analyze(spec: AttentionSpec, o: AnalyzeOptions): Analysis {
  const bindings = o.bindings ?? specBindings(spec), L = o.L, tile = o.tile ?? 64;
  checkAnalysisSize(spec.K, L, tile);
  const timed = <T>(f: () => T): [T, number] => {
    const t0 = performance.now();
    const v = f();
    return [v, performance.now() - t0];
  };
  const [causality, tc] = timed(() => checkCausality(spec, { L, bindings }));
  if (!causality.causal) throw new Error(causality.message);
  const [retention, tr] = timed(() => planRetention(spec, { L, bindings }));
  const [prefill, tp] = timed(() =>
    prefillSet(spec, {
      P: o.P ?? L,
      retention,
      bindings,
      causal: spec.bidirectional !== true,
    })
  );
  const [tiles, tt] = timed(() =>
    classifyTiles(spec, { L, tileQ: tile, tileK: tile, layout: o.layout ?? "grouped", bindings })
  );
  return {
    spec,
    L,
    causality,
    retention,
    prefill,
    tiles,
    ms: { causality: tc, retention: tr, prefill: tp, tiles: tt },
  };
}

/** The JSON-friendly summary of an analysis (`summarize`): no per-token arrays. */
export interface AnalysisSummary {
  /** The spec's full name. */
  name: string;
  /** Copies per position. */
  K: number;
  /** Sequence length in positions. */
  L: number;
  /** The spec's parameter values. */
  params: Readonly<Record<string, number>>;
  /** The mask (and score) as infix text. */
  source: string;
  /** Whether the spec is causal, and the message saying why not. */
  causality: Pick<Causality, "causal" | "message">;
  /** The retention plan without its per-token arrays; an unbounded `reach` is `null`. */
  retention: Pick<RetentionPlan, "formula" | "maxCachedTokens" | "bounded"> & {
    /** Per key copy; `reach` is `null` where no bound was proven. */
    perCopy: (Omit<CopyRetention, "reach"> & { reach: number | null })[];
  };
  /** The prefill plan. */
  prefill: Pick<PrefillPlan, "P" | "count" | "ratio" | "perCopy">;
  /** The tile map without its per-tile classes. */
  tiles: Pick<TileMap, "layout" | "tileQ" | "tileK" | "rows" | "cols" | "counts" | "keptFraction">;
}

/** The JSON-friendly summary of an analysis (no per-token arrays). */
export function summarize(a: Analysis): AnalysisSummary {
  const t = a.tiles, r = a.retention;
  return {
    name: a.spec.name,
    K: a.spec.K,
    L: a.L,
    params: a.spec.params,
    source: a.spec.source,
    causality: { causal: a.causality.causal, message: a.causality.message },
    retention: {
      formula: r.formula,
      maxCachedTokens: r.maxCachedTokens,
      bounded: r.bounded,
      perCopy: r.perCopy.map((c) => ({ ...c, reach: Number.isFinite(c.reach) ? c.reach : null })),
    },
    prefill: {
      P: a.prefill.P,
      count: a.prefill.count,
      ratio: a.prefill.ratio,
      perCopy: a.prefill.perCopy,
    },
    tiles: {
      layout: t.layout,
      tileQ: t.tileQ,
      tileK: t.tileK,
      rows: t.rows,
      cols: t.cols,
      counts: t.counts,
      keptFraction: t.keptFraction,
    },
  };
}
