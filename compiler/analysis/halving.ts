/**
 * Recursive halving of a grid of blocks, the refinement behind the tile classes (tiles.ts) and the
 * prefill key ranges (key_ranges.ts): a rectangle of blocks is settled at once when an abstract
 * verdict covers it, and split in two across its longer side otherwise, so the cost follows the
 * mask's boundary rather than the number of blocks.
 */

/**
 * Visits `[0, rows) x [0, cols)`: `settle(r0, r1, c0, c1)` decides the rectangle of rows
 * `[r0, r1)` and columns `[c0, c1)` and returns true, or returns false to have it split (rows when
 * there are at least as many rows as columns, else columns; the lower half first). A single block
 * must be settled; an empty grid visits nothing.
 */
export function halve(
  rows: number,
  cols: number,
  settle: (r0: number, r1: number, c0: number, c1: number) => boolean,
): void {
  const visit = (r0: number, r1: number, c0: number, c1: number) => {
    if (r0 >= r1 || c0 >= c1) return;
    if (settle(r0, r1, c0, c1)) return;
    if (r1 - r0 === 1 && c1 - c0 === 1) throw new Error("internal: a single block was not settled");
    if (r1 - r0 >= c1 - c0) {
      const m = (r0 + r1) >> 1;
      visit(r0, m, c0, c1);
      visit(m, r1, c0, c1);
    } else {
      const m = (c0 + c1) >> 1;
      visit(r0, r1, c0, m);
      visit(r0, r1, m, c1);
    }
  };
  visit(0, rows, 0, cols);
}
