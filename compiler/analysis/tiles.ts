/**
 * Tile classes: for a tile size and a storage layout, each (query tile, key tile) block of the
 * attention matrix is empty (never visited), full (no mask evaluation) or partial. Decided from the
 * mask expression by recursive halving of the tile grid (halving.ts) with abstract verdicts per
 * copy pair, so the cost follows the mask's boundary, not the K*L x K*L matrix. Also the tile lists
 * the fused kernels walk (`tileLists`).
 */
import type { AttentionSpec } from "../../dsl/spec.ts";
import {
  type Bindings,
  type DenseMask,
  evalBool,
  type Pair,
  specBindings,
} from "../../dsl/eval.ts";
import {
  explore,
  type MaskOracle,
  maskOracle,
  MAYBE,
  region,
  TRUE,
  type Verdict,
} from "./abstract.ts";
import { copyRanges, type Layout, type Range, tokenAt } from "../layout.ts";
import { halve } from "./halving.ts";

/** No pair of the tile is allowed: the kernel never visits it. */
export const EMPTY = 0;
/** Some pairs are allowed: the kernel evaluates the mask. */
export const PARTIAL = 1;
/** Every pair is allowed: the kernel skips the mask. */
export const FULL = 2;
/** A tile's class. */
export type TileClass = typeof EMPTY | typeof PARTIAL | typeof FULL;

/** Options of `classifyTiles`. */
export interface TileOptions {
  /** Positions (tokens per copy). */
  L: number;
  /** Query rows per tile. */
  tileQ: number;
  /** Key columns per tile. */
  tileK: number;
  /** Storage layout the tiles are cut from. */
  layout: Layout;
  /** Parameter values (default: the spec's). */
  bindings?: Bindings;
}

/** The class of every tile of the attention matrix in storage order. */
export interface TileMap {
  /** Storage layout the tiles are cut from. */
  layout: Layout;
  /** Copies per position. */
  K: number;
  /** Positions (tokens per copy). */
  L: number;
  /** Query rows per tile. */
  tileQ: number;
  /** Key columns per tile. */
  tileK: number;
  /** Query tiles. */
  rows: number;
  /** Key tiles. */
  cols: number;
  /** `classes[row * cols + col]`. */
  classes: Uint8Array;
  /** Number of tiles of each class. */
  counts: { empty: number; partial: number; full: number };
  /** Fraction of the matrix's pairs that lie in non-empty tiles (the work a kernel keeps). */
  keptFraction: number;
}

function checkPositive(what: string, v: number) {
  if (!Number.isInteger(v) || v < 1) {
    throw new RangeError(`${what} must be a positive integer, got ${v}`);
  }
}

/** Classifies every tile. Exact: agrees with the dense mask, without building it. */
export function classifyTiles(spec: AttentionSpec, o: TileOptions): TileMap {
  checkPositive("L", o.L);
  checkPositive("tileQ", o.tileQ);
  checkPositive("tileK", o.tileK);
  const { K } = spec, { L, tileQ, tileK, layout } = o, N = K * L;
  if (K > 30) throw new RangeError(`tile classes support K <= 30, got K = ${K}`);
  const rows = Math.ceil(N / tileQ), cols = Math.ceil(N / tileK);
  const oracle = maskOracle(spec.mask, o.bindings ?? specBindings(spec));
  const qRanges = (r0: number, r1: number) =>
    copyRanges(layout, K, L, r0 * tileQ, Math.min(N, r1 * tileQ));
  const kRanges = (c0: number, c1: number) =>
    copyRanges(layout, K, L, c0 * tileK, Math.min(N, c1 * tileK));
  const qMask = Array.from({ length: rows }, (_, r) => presence(qRanges(r, r + 1)));
  const kMask = Array.from({ length: cols }, (_, c) => presence(kRanges(c, c + 1)));
  // kRunEnd[c]: end of the run of key tiles with the same copies as tile c (bulk fills use it).
  const kRunEnd = new Int32Array(cols);
  for (let c = cols - 1; c >= 0; c--) {
    kRunEnd[c] = c + 1 < cols && kMask[c + 1] === kMask[c] ? kRunEnd[c + 1] : c + 1;
  }
  const classes = new Uint8Array(rows * cols);

  halve([0, rows], [0, cols], (r0, r1, c0, c1) => {
    const qr = qRanges(r0, r1), kr = kRanges(c0, c1);
    const v = verdicts(oracle, qr, kr);
    const single = r1 - r0 === 1 && c1 - c0 === 1;
    if (single) {
      classes[r0 * cols + c0] = resolve(oracle, qr, kr, v);
      return true;
    }
    if (v.some((x) => x === MAYBE)) return false;
    const memo = new Map<number, TileClass>();
    for (let r = r0; r < r1; r++) {
      for (let c = c0; c < c1; c = Math.min(c1, kRunEnd[c])) {
        const key = qMask[r] * 2 ** K + kMask[c];
        let cls = memo.get(key);
        if (cls === undefined) {
          cls = fromVerdicts(v, K, qMask[r], kMask[c]);
          memo.set(key, cls);
        }
        classes.fill(cls, r * cols + c, r * cols + Math.min(c1, kRunEnd[c]));
      }
    }
    return true;
  });

  const counts = { empty: 0, partial: 0, full: 0 };
  let kept = 0;
  for (let r = 0; r < rows; r++) {
    const h = Math.min(N, (r + 1) * tileQ) - r * tileQ;
    for (let c = 0; c < cols; c++) {
      const cls = classes[r * cols + c];
      if (cls === EMPTY) counts.empty++;
      else {
        if (cls === FULL) counts.full++;
        else counts.partial++;
        kept += h * (Math.min(N, (c + 1) * tileK) - c * tileK);
      }
    }
  }
  return { layout, K, L, tileQ, tileK, rows, cols, classes, counts, keptFraction: kept / (N * N) };
}

/** Bit c set when copy c has positions in the range list. */
function presence(ranges: Range[]): number {
  let m = 0;
  ranges.forEach((r, c) => {
    if (r.lo <= r.hi) m |= 1 << c;
  });
  return m;
}

/** Verdict per (query copy, key copy), `v[qc * K + kc]`; FALSE where a copy is absent. */
function verdicts(o: MaskOracle, qr: Range[], kr: Range[]): Verdict[] {
  const K = qr.length, v: Verdict[] = new Array(K * K).fill(0);
  for (let qc = 0; qc < K; qc++) {
    if (qr[qc].lo > qr[qc].hi) continue;
    for (let kc = 0; kc < K; kc++) {
      if (kr[kc].lo > kr[kc].hi) continue;
      v[qc * K + kc] = o.verdict(
        region([qc, qc], [qr[qc].lo, qr[qc].hi], [kc, kc], [kr[kc].lo, kr[kc].hi]),
      );
    }
  }
  return v;
}

/** Class of a tile whose present copy pairs all have definite verdicts. */
function fromVerdicts(v: Verdict[], K: number, qm: number, km: number): TileClass {
  let any = false, all = true;
  for (let qc = 0; qc < K; qc++) {
    if (!(qm >> qc & 1)) continue;
    for (let kc = 0; kc < K; kc++) {
      if (!(km >> kc & 1)) continue;
      if (v[qc * K + kc] === TRUE) any = true;
      else all = false;
    }
  }
  return all ? FULL : any ? PARTIAL : EMPTY;
}

/** Exact class of one tile: undecided copy pairs are searched for allowed/forbidden pairs. */
function resolve(o: MaskOracle, qr: Range[], kr: Range[], v: Verdict[]): TileClass {
  const K = qr.length;
  let any = false, all = true;
  for (let qc = 0; qc < K; qc++) {
    if (qr[qc].lo > qr[qc].hi) continue;
    for (let kc = 0; kc < K; kc++) {
      if (kr[kc].lo > kr[kc].hi) continue;
      const x = v[qc * K + kc];
      if (x === TRUE) any = true;
      else if (x !== MAYBE) all = false;
      else {
        const f = explore(
          o,
          region([qc, qc], [qr[qc].lo, qr[qc].hi], [kc, kc], [kr[kc].lo, kr[kc].hi]),
          {
            allowed: !any,
            forbidden: all,
          },
        );
        if (f.allowed) any = true;
        if (f.forbidden) all = false;
      }
      if (any && !all) return PARTIAL;
    }
  }
  return all ? FULL : any ? PARTIAL : EMPTY;
}

/**
 * The non-empty tiles as compressed rows (per query tile its key tiles), or, transposed, as
 * compressed columns (per key tile its query tiles, for the dK/dV backward pass).
 */
export function tileLists(
  map: TileMap,
  by: "rows" | "cols" = "rows",
): { offsets: Uint32Array; index: Uint32Array; classes: Uint8Array } {
  const outer = by === "rows" ? map.rows : map.cols, inner = by === "rows" ? map.cols : map.rows;
  const offsets = new Uint32Array(outer + 1);
  const index: number[] = [], cls: number[] = [];
  for (let a = 0; a < outer; a++) {
    for (let b = 0; b < inner; b++) {
      const c = map.classes[by === "rows" ? a * map.cols + b : b * map.cols + a];
      if (c !== EMPTY) {
        index.push(b);
        cls.push(c);
      }
    }
    offsets[a + 1] = index.length;
  }
  return { offsets, index: Uint32Array.from(index), classes: Uint8Array.from(cls) };
}

/**
 * The dense mask in the storage order of a tile map's layout (`tokens[s]` is the token stored at
 * s), read off the tiles: empty tiles stay 0, full tiles are all 1, and only partial tiles
 * evaluate the mask, so pictures of long sequences cost what the mask's boundary costs (grouped
 * PHD-CSWA at L = 1024: 2% of the pairs). Exact, as the tile classes are.
 */
export function tileDenseMask(
  spec: AttentionSpec,
  map: TileMap,
  b = specBindings(spec),
): DenseMask {
  const { K, L, tileQ, tileK, rows, cols } = map, N = K * L;
  const tokens = Array.from({ length: N }, (_, s) => tokenAt(map.layout, K, L, s));
  const allowed = new Uint8Array(N * N);
  const at: Pair = { qc: 0, qp: 0, kc: 0, kp: 0 };
  for (let r = 0; r < rows; r++) {
    const q1 = Math.min(N, (r + 1) * tileQ);
    for (let c = 0; c < cols; c++) {
      const cls = map.classes[r * cols + c], k0 = c * tileK, k1 = Math.min(N, k0 + tileK);
      if (cls === EMPTY) continue;
      for (let q = r * tileQ; q < q1; q++) {
        if (cls === FULL) {
          allowed.fill(1, q * N + k0, q * N + k1);
          continue;
        }
        [at.qc, at.qp] = tokens[q];
        for (let k = k0; k < k1; k++) {
          [at.kc, at.kp] = tokens[k];
          allowed[q * N + k] = evalBool(spec.mask, at, b) ? 1 : 0;
        }
      }
    }
  }
  return { K, L, tokens, allowed };
}
