/**
 * Statistics of measured samples (browser-safe): the median the benchmarks and the tuner report.
 */

/**
 * Median of a non-empty list. With an even count it is the mean of the two middle values, or with
 * `{ even: "upper" }` the upper one (what the training, inference and analysis benchmarks have
 * always reported: their figures stay comparable).
 */
export function median(xs: readonly number[], o: { even?: "mean" | "upper" } = {}): number {
  const s = [...xs].sort((a, b) => a - b), m = s.length >> 1;
  if (s.length % 2 || o.even === "upper") return s[m];
  return (s[m - 1] + s[m]) / 2;
}
