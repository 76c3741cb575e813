/**
 * Recursive halving of a grid, the refinement behind the tile classes (tiles.ts), the prefill key
 * ranges (key_ranges.ts) and the prefill closure (prefill.ts): a rectangle is settled at once when
 * an abstract verdict covers it, and split in two across its longer side otherwise, so the cost
 * follows the mask's boundary rather than the grid's area.
 */

/**
 * Visits the rectangle of rows `[rows[0], rows[1])` and columns `[cols[0], cols[1])`:
 * `settle(r0, r1, c0, c1)` decides a sub-rectangle and returns true, or returns false to have it
 * split, rows when it has at least as many rows as columns, else columns, at `(lo + hi) >> 1`;
 * the lower half is visited first, except for rows when `lastRowsFirst` (a closure that grows a
 * set visits the rows that add the most first, so that the others are pruned). A single cell must
 * be settled; empty rectangles are not visited.
 */
export function halve(
  rows: readonly [number, number],
  cols: readonly [number, number],
  settle: (r0: number, r1: number, c0: number, c1: number) => boolean,
  o: { lastRowsFirst?: boolean } = {},
): void {
  const visit = (r0: number, r1: number, c0: number, c1: number) => {
    if (r0 >= r1 || c0 >= c1 || settle(r0, r1, c0, c1)) return;
    if (r1 - r0 === 1 && c1 - c0 === 1) throw new Error("internal: a single cell was not settled");
    if (r1 - r0 >= c1 - c0) {
      const m = (r0 + r1) >> 1;
      if (o.lastRowsFirst) {
        visit(m, r1, c0, c1);
        visit(r0, m, c0, c1);
      } else {
        visit(r0, m, c0, c1);
        visit(m, r1, c0, c1);
      }
    } else {
      const m = (c0 + c1) >> 1;
      visit(r0, r1, c0, m);
      visit(r0, r1, m, c1);
    }
  };
  visit(rows[0], rows[1], cols[0], cols[1]);
}
