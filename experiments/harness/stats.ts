/**
 * Statistics of an experiment across seeds, stated plainly: per arm the mean and sample standard
 * deviation of the final validation bits per byte, and against the baseline the paired
 * differences (same seed: same initial-weight stream and batch order), their mean and a 95%
 * paired t-interval. A difference is "beyond seed noise" when that interval excludes 0. With 2-5
 * seeds the interval is wide (t = 12.7 for 2 seeds, 4.30 for 3): that is the honest answer.
 */

/** Two-sided 95% Student t quantiles (0.975) by degrees of freedom 1..30; beyond, the normal. */
const T975 = [
  12.706,
  4.303,
  3.182,
  2.776,
  2.571,
  2.447,
  2.365,
  2.306,
  2.262,
  2.228,
  2.201,
  2.179,
  2.16,
  2.145,
  2.131,
  2.12,
  2.11,
  2.101,
  2.093,
  2.086,
  2.08,
  2.074,
  2.069,
  2.064,
  2.06,
  2.056,
  2.052,
  2.048,
  2.045,
  2.042,
];

/** The 0.975 quantile of Student's t with `df` degrees of freedom (df >= 1). */
export function t975(df: number): number {
  if (!Number.isInteger(df) || df < 1) {
    throw new RangeError(`df must be an integer >= 1, got ${df}`);
  }
  return df <= T975.length ? T975[df - 1] : 1.96;
}

export function mean(xs: readonly number[]): number {
  if (xs.length === 0) throw new RangeError("mean of no values");
  return xs.reduce((a, b) => a + b, 0) / xs.length;
}

/** Sample standard deviation (n - 1); 0 for a single value. */
export function sd(xs: readonly number[]): number {
  if (xs.length < 2) return 0;
  const m = mean(xs);
  return Math.sqrt(xs.reduce((a, x) => a + (x - m) ** 2, 0) / (xs.length - 1));
}

/** Paired comparison of an arm with the baseline. */
export interface Comparison {
  /** Seeds both have. */
  n: number;
  /** Mean of arm - baseline. */
  diff: number;
  /** 95% paired t-interval of the mean difference (undefined with fewer than 2 pairs). */
  ci?: [number, number];
  verdict: "better" | "worse" | "within seed noise" | "too few seeds";
}

/**
 * Compares `arm` with `base`, paired by key (the seed). Lower is better (losses) unless
 * `higherIsBetter` (accuracies).
 */
export function compare(
  arm: Map<number, number>,
  base: Map<number, number>,
  higherIsBetter = false,
): Comparison {
  const d = [...arm].filter(([s]) => base.has(s)).map(([s, v]) => v - base.get(s)!);
  if (d.length === 0) return { n: 0, diff: NaN, verdict: "too few seeds" };
  const diff = mean(d);
  if (d.length < 2) return { n: 1, diff, verdict: "too few seeds" };
  const half = t975(d.length - 1) * sd(d) / Math.sqrt(d.length);
  const ci: [number, number] = [diff - half, diff + half];
  const [below, above] = higherIsBetter
    ? ["worse", "better"] as const
    : ["better", "worse"] as const;
  const verdict = ci[1] < 0 ? below : ci[0] > 0 ? above : "within seed noise";
  return { n: d.length, diff, ci, verdict };
}
