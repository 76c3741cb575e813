/**
 * Which key rows each query tile of the coordinate-attention kernel reads
 * (compiler/codegen/coord_attention.ts): lists of key ranges `[start, end)` per query tile, `full`
 * where the mask is known true on every pair. Prefill derives them from the abstract mask oracle;
 * a decode step reads every slot.
 */
import { FALSE, type MaskOracle, region, tighten, TRUE } from "./abstract.ts";
import { halve } from "./halving.ts";

/** Key ranges `[start, end)` per query tile, `full` when the mask is known true on all pairs. */
export type KeyRanges = { start: number; end: number; full: boolean }[][];

/** Every query tile visits every slot (decode: slots are in no particular order). */
export function openRanges(queryTiles: number): KeyRanges {
  return Array.from({ length: queryTiles }, () => [{ start: 0, end: Infinity, full: false }]);
}

/**
 * Key ranges of rows attending rows (prefill): `coords` holds `(copy, pos)` per row, rows sorted so
 * that copy-0 rows come first by position and the others follow by (position, copy). Query tiles
 * of `tileQ` rows, key blocks of `tileK` rows; blocks are classified by the oracle's verdict on the
 * bounding box of their coordinates (sound: FALSE drops, TRUE marks full), refining by halving
 * where it is undecided; adjacent blocks of one class merge into one range.
 */
export function prefillRanges(
  oracle: MaskOracle,
  K: number,
  coords: Int32Array,
  o: { tileQ: number; tileK: number },
): KeyRanges {
  const n = coords.length / 2, { tileQ, tileK } = o;
  const qTiles = Math.ceil(n / tileQ), kTiles = Math.ceil(n / tileK);
  let originals = 0;
  while (originals < n && coords[2 * originals] === 0) originals++;
  // Bounding box of rows [a, b): [cLo, cHi, pLo, pHi].
  const box = (a: number, b: number): [number, number, number, number] => {
    let cLo = Infinity, cHi = -Infinity, pLo = Infinity, pHi = -Infinity;
    if (a < originals) {
      const e = Math.min(b, originals) - 1;
      cLo = cHi = 0;
      pLo = coords[2 * a + 1];
      pHi = coords[2 * e + 1];
    }
    if (b > originals) {
      const s = Math.max(a, originals), e = b - 1;
      const p0 = coords[2 * s + 1], p1 = coords[2 * e + 1];
      const [c0, c1] = p0 === p1 ? [coords[2 * s], coords[2 * e]] : [1, K - 1];
      cLo = Math.min(cLo, c0);
      cHi = Math.max(cHi, c1);
      pLo = Math.min(pLo, p0);
      pHi = Math.max(pHi, p1);
    }
    return [cLo, cHi, pLo, pHi];
  };
  // class per (query tile, key block): 0 empty (absent), 1 partial, 2 full
  const cls: Map<number, number>[] = Array.from({ length: qTiles }, () => new Map());
  const mark = (q0: number, q1: number, k0: number, k1: number, c: number) => {
    for (let t = q0; t < q1; t++) for (let kb = k0; kb < k1; kb++) cls[t].set(kb, c);
  };
  halve([0, qTiles], [0, kTiles], (q0, q1, k0, k1) => {
    const qb = box(q0 * tileQ, Math.min(n, q1 * tileQ));
    const kb = box(k0 * tileK, Math.min(n, k1 * tileK));
    const r = region([qb[0], qb[1]], [qb[2], qb[3]], [kb[0], kb[1]], [kb[2], kb[3]]);
    if (!tighten(r)) return true;
    const v = oracle.verdict(r);
    if (v === FALSE) return true;
    if (v === TRUE) mark(q0, q1, k0, k1, 2);
    else if (q1 - q0 === 1 && k1 - k0 === 1) mark(q0, q1, k0, k1, 1);
    else return false;
    return true;
  });
  return cls.map((m) => {
    const list: { start: number; end: number; full: boolean }[] = [];
    for (const kb of [...m.keys()].sort((a, b) => a - b)) {
      const full = m.get(kb) === 2, start = kb * tileK, end = Math.min(n, start + tileK);
      const last = list[list.length - 1];
      if (last && last.end === start && last.full === full) last.end = end;
      else list.push({ start, end, full });
    }
    return list;
  });
}
