/**
 * Storage layouts of the expanded sequence (docs/DESIGN.md 1.1, 1.4). `interleaved` stores token
 * (c, p) at `p*K + c` (the canonical order); `grouped` stores all originals first, then the hidden
 * tokens in hidden-index order: `[originals | hidden]` (paper Fig. 3). A contiguous range of storage
 * indices holds, for each copy, a contiguous range of positions: the analysis works on those.
 */

/** How the K*L tokens of a sequence are laid out in memory. */
export type Layout = "interleaved" | "grouped";

/** The layouts, for CLI validation and sweeps. */
export const LAYOUTS: readonly Layout[] = ["interleaved", "grouped"];

/** Inclusive integer range; empty when `lo > hi`. */
export interface Range {
  /** First integer of the range. */
  lo: number;
  /** Last integer of the range (inclusive). */
  hi: number;
}

/** Storage index of token (c, p). */
export function storageIndex(layout: Layout, K: number, L: number, c: number, p: number): number {
  if (layout === "interleaved" || K === 1) return p * K + c;
  return c === 0 ? p : L + p * (K - 1) + (c - 1);
}

/** Token `[copy, pos]` stored at index s. */
export function tokenAt(layout: Layout, K: number, L: number, s: number): [number, number] {
  if (layout === "interleaved" || K === 1) return [s % K, Math.floor(s / K)];
  if (s < L) return [0, s];
  const h = s - L;
  return [1 + (h % (K - 1)), Math.floor(h / (K - 1))];
}

/**
 * For each copy c, the positions of copy c stored in indices [s0, s1): always one contiguous
 * range (possibly empty), because within a layout region positions of a copy are increasing.
 */
export function copyRanges(layout: Layout, K: number, L: number, s0: number, s1: number): Range[] {
  const out: Range[] = [];
  for (let c = 0; c < K; c++) {
    if (layout === "interleaved" || K === 1) {
      out.push(strided(s0, s1, K, c, L));
    } else if (c === 0) {
      out.push({ lo: Math.max(s0, 0), hi: Math.min(s1, L) - 1 });
    } else {
      out.push(strided(s0 - L, s1 - L, K - 1, c - 1, L));
    }
  }
  return out;
}

/** Positions p in [0, L) with `p*stride + off` in [a, b). */
function strided(a: number, b: number, stride: number, off: number, L: number): Range {
  return {
    lo: Math.max(0, Math.ceil((a - off) / stride)),
    hi: Math.min(L - 1, Math.floor((b - 1 - off) / stride)),
  };
}
