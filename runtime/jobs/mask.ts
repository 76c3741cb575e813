/**
 * A spec's mask and what the compiler derives from it, what `deno task mask` calls: the summary
 * (viz/mask_report.ts), or the dense mask as JSON, and two-panel SVG/PNG pictures written
 * atomically. Refuses, with `maxCache`, a spec whose KV cache is unbounded or too large, and a
 * dense output beyond `DENSE_LIMIT` tokens.
 */
import {
  type Analysis,
  analyze,
  checkAnalysisSize,
  MAX_ANALYSIS_TILES,
} from "../../compiler/analysis/analyze.ts";
import type { Layout } from "../../compiler/layout.ts";
import { denseMask } from "../../dsl/eval.ts";
import type { AttentionSpec } from "../../dsl/spec.ts";
import { maskPng, maskSvg } from "../../viz/mask_picture.ts";
import { denseJson, maskSummary } from "../../viz/mask_report.ts";
import { writeFileAtomic } from "../host/files.ts";
import { guardOutputs, oursPicture } from "../host/outputs.ts";

/** Most tokens (K*L) for outputs that build the dense K*L x K*L mask (`--json`, dense panel). */
export const DENSE_LIMIT = 4096;

/**
 * The default tile edge: the smallest power of two giving at most 32 tiles a side, at most 64
 * unless more would pass the analysis's `MAX_ANALYSIS_TILES` a side.
 */
export function defaultTile(N: number): number {
  let t = 1;
  while ((t < 64 && Math.ceil(N / t) > 32) || Math.ceil(N / t) > MAX_ANALYSIS_TILES) t *= 2;
  return t;
}

/** What `maskReport` is asked. */
export interface MaskRequest {
  /** Sequence length in positions. */
  L: number;
  /** Tile edge of the tile classes; default `defaultTile(K*L)`. */
  tile?: number;
  /** Storage layout the tiles are cut from (the dense outputs are always canonical). */
  layout: Layout;
  /** The dense mask JSON (K*L <= DENSE_LIMIT) instead of the summary. */
  json?: boolean;
  /** Write an SVG picture here. */
  svg?: string;
  /** Write a PNG picture here. */
  png?: string;
  /** Pictures without the dense panel (any L). */
  tilesOnly?: boolean;
  /** Refuse specs whose KV cache is unbounded or may exceed this many tokens. */
  maxCache?: number;
  /** The spec's file, kept off the pictures' paths. */
  specFile?: string;
  /** Replace existing picture paths that are not pictures of ours. */
  force?: boolean;
  /** Where a line goes before an analysis that takes seconds. */
  log?: (line: string) => void;
}

/** The refusal for `--max-cache N`, or undefined when the retention fits. */
function cacheRefusal(a: Analysis, max: number): string | undefined {
  const r = a.retention;
  if (!r.bounded) {
    return `spec "${a.spec.name}" has an unbounded KV cache (${r.formula} tokens), ` +
      `--max-cache ${max} asks for a bound: window the keys that stay cached, or drop --max-cache`;
  }
  if (r.maxCachedTokens > max) {
    return `spec "${a.spec.name}" caches up to ${r.maxCachedTokens} tokens (${r.formula}) for ` +
      `L=${a.L}, above --max-cache ${max}: use a smaller window or --L, or raise --max-cache`;
  }
  return undefined;
}

/** The analysis (and pictures written); returns what `deno task mask` prints. */
export async function maskReport(spec: AttentionSpec, f: MaskRequest): Promise<string> {
  const N = spec.K * f.L;
  const pictures = [["--svg", f.svg], ["--png", f.png]].filter(([, p]) => p)
    .map(([flag, path]) => ({ path: path!, flag: flag!, what: "picture", ours: oursPicture }));
  await guardOutputs(pictures, f.specFile ? [{ path: f.specFile, flag: "<spec>" }] : [], f);
  const drawsDense = Boolean(f.svg || f.png) && !f.tilesOnly;
  if ((f.json || drawsDense) && N > DENSE_LIMIT) {
    const flag = f.json ? "--json" : f.svg ? "--svg" : "--png";
    const fix = f.json ? "drop --json for the tile-class summary" : "add --tiles-only";
    throw new RangeError(
      `${flag} needs the dense mask of K*L = ${N} tokens, above the limit of ${DENSE_LIMIT}: ` +
        `use a smaller --L, or ${fix}`,
    );
  }
  const tile = f.tile ?? defaultTile(N);
  checkAnalysisSize(spec.K, f.L, tile);
  if (N > 1 << 16) f.log?.(`analysing ${N} tokens (K·L; seconds at this size) ...`);
  const a = analyze(spec, { L: f.L, tile, layout: f.layout });
  if (f.maxCache !== undefined) {
    const refusal = cacheRefusal(a, f.maxCache);
    if (refusal) throw new RangeError(refusal);
  }
  const mask = f.json || drawsDense ? denseMask(spec, f.L) : undefined;
  const picture = { name: spec.name, mask: drawsDense ? mask : undefined, tiles: a.tiles };
  const out: string[] = [];
  if (f.svg) {
    await writeFileAtomic(f.svg, maskSvg(picture));
    out.push(`wrote ${f.svg}`);
  }
  if (f.png) {
    await writeFileAtomic(f.png, maskPng(picture));
    out.push(`wrote ${f.png}`);
  }
  if (mask && f.json) return JSON.stringify(denseJson(mask));
  return [maskSummary(a), ...out].join("\n");
}
