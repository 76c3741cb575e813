/**
 * Statistics, in one place for bench/, the tuner and the experiments (browser-safe).
 *
 * Measured samples: the median the benchmarks and the tuner report.
 *
 * Experiments across seeds, stated plainly: per arm the mean and sample standard deviation of the
 * final validation bits per byte (or task accuracy), and per comparison of two arms the paired
 * differences (same seed: same initial weights and batch order), their mean, their standard
 * deviation (the seed-to-seed spread of the effect), a 95% paired t-interval and the two-sided p
 * of the paired t-test. A suite asks several questions of the same seeds, so each metric's
 * comparisons are also corrected together by Holm's step-down method (`holm`), which holds the
 * chance of any false "beyond seed noise" among them at 5%; that corrected verdict is the one the
 * text states. With 5 seeds the interval is wide (t = 2.78 for 4 degrees of freedom): that is the
 * honest answer.
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

/** ln Γ(x) for x > 0 (Lanczos, g = 7, 9 terms: about 15 significant digits). */
function lnGamma(x: number): number {
  const c = [
    0.99999999999980993,
    676.5203681218851,
    -1259.1392167224028,
    771.32342877765313,
    -176.61502916214059,
    12.507343278686905,
    -0.13857109526572012,
    9.9843695780195716e-6,
    1.5056327351493116e-7,
  ];
  if (x < 0.5) return Math.log(Math.PI / Math.sin(Math.PI * x)) - lnGamma(1 - x);
  x -= 1;
  let a = c[0];
  const t = x + 7.5;
  for (let i = 1; i < 9; i++) a += c[i] / (x + i);
  return 0.5 * Math.log(2 * Math.PI) + (x + 0.5) * Math.log(t) - t + Math.log(a);
}

/** The continued fraction of the incomplete beta function (modified Lentz). */
function betaFraction(x: number, a: number, b: number): number {
  const tiny = 1e-300;
  let c = 1, d = 1 - (a + b) * x / (a + 1);
  d = 1 / (Math.abs(d) < tiny ? tiny : d);
  let h = d;
  for (let m = 1; m <= 300; m++) {
    for (
      const num of [
        m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m)),
        -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1)),
      ]
    ) {
      d = 1 + num * d;
      d = 1 / (Math.abs(d) < tiny ? tiny : d);
      c = 1 + num / c;
      if (Math.abs(c) < tiny) c = tiny;
      h *= d * c;
    }
    if (Math.abs(d * c - 1) < 1e-15) break;
  }
  return h;
}

/** The regularized incomplete beta function I_x(a, b), 0 <= x <= 1. */
export function incompleteBeta(x: number, a: number, b: number): number {
  if (x <= 0) return 0;
  if (x >= 1) return 1;
  const front = Math.exp(
    lnGamma(a + b) - lnGamma(a) - lnGamma(b) + a * Math.log(x) + b * Math.log(1 - x),
  );
  // the fraction converges fast on this side; the other side by symmetry
  return x < (a + 1) / (a + b + 2)
    ? front * betaFraction(x, a, b) / a
    : 1 - front * betaFraction(1 - x, b, a) / b;
}

/** Two-sided p-value of Student's t statistic `t` with `df` degrees of freedom. */
export function tTestP(t: number, df: number): number {
  if (Number.isNaN(t)) return 1;
  if (!Number.isFinite(t)) return 0;
  return incompleteBeta(df / (df + t * t), df / 2, 0.5);
}

/**
 * Holm's step-down adjusted p-values, in the order given: the i-th smallest of m p-values is
 * multiplied by m - i + 1 (i from 1), then made non-decreasing along that order, capped at 1. A
 * comparison is beyond noise at family-wise level 5% when its adjusted p is below 0.05.
 */
export function holm(ps: readonly number[]): number[] {
  const order = ps.map((p, i) => [p, i] as const).sort((a, b) => a[0] - b[0]);
  const out = new Array<number>(ps.length);
  let running = 0;
  order.forEach(([p, i], rank) => {
    running = Math.max(running, Math.min(1, (ps.length - rank) * p));
    out[i] = running;
  });
  return out;
}

/** What a comparison says. */
export type Verdict = "better" | "worse" | "within seed noise" | "too few seeds";

/** Paired comparison of an arm with another (the baseline, or a suite's extra pair). */
export interface Comparison {
  /** Seeds both have. */
  n: number;
  /** Mean of arm - other. */
  diff: number;
  /** Sample standard deviation of the per-seed differences: the effect's seed-to-seed spread. */
  sd: number;
  /** 95% paired t-interval of the mean difference (undefined with fewer than 2 pairs). */
  ci?: [number, number];
  /** Two-sided p of the paired t-test (undefined with fewer than 2 pairs). */
  p?: number;
  /** By the uncorrected interval: beyond seed noise when it excludes 0. */
  verdict: Verdict;
  /** Holm-adjusted p across the suite's comparisons of this metric (`withHolm`). */
  p_holm?: number;
  /** By the Holm-adjusted p: the verdict the text states. */
  verdict_holm?: Verdict;
}

function verdictOf(beyond: boolean, diff: number, higherIsBetter: boolean): Verdict {
  if (!beyond) return "within seed noise";
  return (diff < 0) !== higherIsBetter ? "better" : "worse";
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
  if (d.length === 0) return { n: 0, diff: NaN, sd: NaN, verdict: "too few seeds" };
  const diff = mean(d);
  if (d.length < 2) return { n: 1, diff, sd: 0, verdict: "too few seeds" };
  const spread = sd(d), se = spread / Math.sqrt(d.length);
  const half = t975(d.length - 1) * se;
  const ci: [number, number] = [diff - half, diff + half];
  // identical differences: no spread, so any non-zero mean is beyond noise
  const p = se === 0 ? (diff === 0 ? 1 : 0) : tTestP(diff / se, d.length - 1);
  const beyond = ci[1] < 0 || ci[0] > 0;
  return { n: d.length, diff, sd: spread, ci, p, verdict: verdictOf(beyond, diff, higherIsBetter) };
}

/**
 * Holm's correction over one metric's comparisons of a suite: each gets `p_holm` and
 * `verdict_holm`. Those without a p (fewer than 2 seeds) stay "too few seeds" and are not counted.
 */
export function withHolm(cs: Comparison[], higherIsBetter = false): Comparison[] {
  const tested = cs.filter((c) => c.p !== undefined);
  const adjusted = holm(tested.map((c) => c.p!));
  return cs.map((c) => {
    const i = tested.indexOf(c);
    if (i < 0) return { ...c, verdict_holm: c.verdict };
    const p_holm = adjusted[i];
    return { ...c, p_holm, verdict_holm: verdictOf(p_holm < 0.05, c.diff, higherIsBetter) };
  });
}
