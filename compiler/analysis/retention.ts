/**
 * KV retention: how long each key must stay cached once its token is done. The lifetime of key
 * (c, m) is the last query position that may read it; it stays cached while m <= n < lifetime.
 * Queries range over one position past the sequence, so the plan describes a cache that can keep
 * decoding. Lifetimes come from the expression: a proven bound D (no query D or more positions
 * later reads copy c) limits the search to a band of D positions; keys with no small bound are
 * settled in blocks (read by the last query: kept for the whole sequence) or searched one by one.
 */
import type { AttentionSpec } from "../../dsl/spec.ts";
import { type Bindings, specBindings } from "../../dsl/eval.ts";
import { FALSE, type MaskOracle, maskOracle, MAYBE, region, tighten, TRUE } from "./abstract.ts";

/** Retention of one key copy. */
export interface CopyRetention {
  /** The key copy c, in [0, K). */
  copy: number;
  /** `all`: kept for the whole sequence; `window`: a bounded number kept; `none`: dropped. */
  kind: "all" | "window" | "none";
  /** Most keys of this copy cached at once. */
  positions: number;
  /** Proven bound on the distance (positions) from a key to its last reader; Infinity if none. */
  reach: number;
}

/** The retention plan of a spec for sequences of L positions. */
export interface RetentionPlan {
  /** Copies per position. */
  K: number;
  /** Sequence length in positions. */
  L: number;
  /** Retention of each key copy, indexed by copy. */
  perCopy: CopyRetention[];
  /** `lifetime[c * L + m]`: last query position that reads key (c, m) (m itself if none later). */
  lifetime: Int32Array;
  /** `cachedAfter[n]`: keys cached once position n is done. */
  cachedAfter: Int32Array;
  /** Largest cache over the sequence, in tokens per layer and KV head. */
  maxCachedTokens: number;
  /**
   * The cache capacity as a formula of L for these K and parameters: L per copy kept for the whole
   * sequence plus the most keys of the other copies cached at once, e.g. `L + 15` for PHD-SWA(16).
   */
  formula: string;
  /** True when the cache grows like a vanilla model's (one copy kept per position) plus a window. */
  bounded: boolean;
}

/** Keys whose bound is at most this are settled by scanning the band of their possible readers. */
const BAND = 512;

/** Derives the retention plan. */
export function planRetention(
  spec: AttentionSpec,
  o: { L: number; bindings?: Bindings },
): RetentionPlan {
  const { K } = spec, L = o.L;
  const oracle = maskOracle(spec.mask, o.bindings ?? specBindings(spec));
  const lifetime = new Int32Array(K * L);
  const perCopy: CopyRetention[] = [];
  const cachedAfter = new Int32Array(L);
  const windowAfter = new Int32Array(L); // keys of copies not kept for the whole sequence
  for (let kc = 0; kc < K; kc++) {
    const reach = readerBound(oracle, K, L, kc);
    const life = lifetime.subarray(kc * L, (kc + 1) * L);
    if (reach <= BAND) bandLifetimes(oracle, K, L, kc, reach, life);
    else blockLifetimes(oracle, K, L, kc, 0, L - 1, life);
    const count = new Int32Array(L + 1);
    for (let m = 0; m < L; m++) {
      if (life[m] > m) {
        count[m]++;
        count[life[m]]--;
      }
    }
    let all = true, none = true;
    for (let m = 0; m < L; m++) {
      if (life[m] !== L) all = false;
      if (life[m] !== m) none = false;
    }
    let run = 0, most = 0;
    for (let n = 0; n < L; n++) {
      run += count[n];
      cachedAfter[n] += run;
      if (!all) windowAfter[n] += run;
      most = Math.max(most, run);
    }
    perCopy.push({
      copy: kc,
      kind: all ? "all" : none ? "none" : "window",
      positions: most,
      reach,
    });
  }
  const maxCachedTokens = cachedAfter.reduce((a, b) => Math.max(a, b), 0);
  const full = perCopy.filter((c) => c.kind === "all").length;
  const windowed = windowAfter.reduce((a, b) => Math.max(a, b), 0);
  const formula = full === 0
    ? `${windowed}`
    : `${full === 1 ? "" : `${full}·`}L${windowed > 0 ? ` + ${windowed}` : ""}`;
  const bounded = full <= 1 &&
    perCopy.every((c) => c.kind !== "window" || c.reach < Math.max(2, L / 2));
  return { K, L, perCopy, lifetime, cachedAfter, maxCachedTokens, formula, bounded };
}

/** Smallest proven D such that no query D or more positions after a key of copy kc reads it. */
function readerBound(o: MaskOracle, K: number, L: number, kc: number): number {
  const none = (D: number) => {
    for (let qc = 0; qc < K; qc++) {
      const r = region([qc, qc], [0, L], [kc, kc], [0, L - 1], [-Infinity, -D]);
      if (tighten(r) && o.verdict(r) !== FALSE) return false;
    }
    return true;
  };
  if (!none(L)) return Infinity;
  let lo = 1, hi = L; // none(hi) holds
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (none(mid)) hi = mid;
    else lo = mid + 1;
  }
  return lo;
}

/** Lifetimes of copy kc when every reader is less than `reach` positions after its key. */
function bandLifetimes(
  o: MaskOracle,
  K: number,
  L: number,
  kc: number,
  reach: number,
  life: Int32Array,
) {
  for (let m = 0; m < L; m++) life[m] = bandLifetime(o, K, kc, m, Math.min(L, m + reach - 1));
}

/** Last query position in (m, last] that reads key (kc, m), scanning down; m if none. */
function bandLifetime(o: MaskOracle, K: number, kc: number, m: number, last: number): number {
  for (let n = last; n > m; n--) {
    for (let qc = 0; qc < K; qc++) if (o.allowed(qc, n, kc, m)) return n;
  }
  return m;
}

/**
 * Lifetimes for decoding past the plan's length: the last query position, up to `horizon`, that
 * reads key (kc, m); Infinity for copies the plan keeps for the whole sequence.
 */
export function decodeLifetime(
  spec: AttentionSpec,
  plan: RetentionPlan,
  o: { bindings?: Bindings },
): (kc: number, m: number, horizon: number) => number {
  const oracle = maskOracle(spec.mask, o.bindings ?? specBindings(spec));
  return (kc, m, horizon) => {
    const c = plan.perCopy[kc];
    if (c.kind === "all") return Infinity;
    if (c.reach <= BAND) {
      return bandLifetime(oracle, spec.K, kc, m, Math.min(horizon, m + c.reach - 1));
    }
    return lastReader(oracle, spec.K, kc, m, m + 1, horizon) ?? m;
  };
}

/** Lifetimes of keys m in [m0, m1] of copy kc: whole blocks read by the last query first. */
function blockLifetimes(
  o: MaskOracle,
  K: number,
  L: number,
  kc: number,
  m0: number,
  m1: number,
  life: Int32Array,
) {
  for (let qc = 0; qc < K; qc++) {
    const r = region([qc, qc], [L, L], [kc, kc], [m0, m1]);
    if (o.verdict(r) === TRUE) {
      life.fill(L, m0, m1 + 1);
      return;
    }
  }
  if (m0 === m1) {
    life[m0] = lastReader(o, K, kc, m0, m0 + 1, L) ?? m0;
    return;
  }
  const mid = (m0 + m1) >> 1;
  blockLifetimes(o, K, L, kc, m0, mid, life);
  blockLifetimes(o, K, L, kc, mid + 1, m1, life);
}

/** Last query position in [a, b] that reads key (kc, m), searching the later half first. */
function lastReader(
  o: MaskOracle,
  K: number,
  kc: number,
  m: number,
  a: number,
  b: number,
): number | undefined {
  if (a > b) return undefined;
  let maybe = false;
  for (let qc = 0; qc < K; qc++) {
    const v = o.verdict(region([qc, qc], [a, b], [kc, kc], [m, m]));
    if (v !== FALSE) maybe = true;
    if (v === TRUE || (v === MAYBE && o.allowed(qc, b, kc, m))) return b;
  }
  if (!maybe || a === b) return undefined;
  const mid = (a + b) >> 1;
  return lastReader(o, K, kc, m, mid + 1, b - 1) ?? lastReader(o, K, kc, m, a, mid);
}
