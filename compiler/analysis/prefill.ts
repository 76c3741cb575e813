/**
 * The prefill set (docs/DESIGN.md 1.4): the tokens a prompt of P positions must compute. They are
 * the keys that must end in the cache (per the retention plan), the last position's last copy
 * (whose logits give the first new token), and, transitively, every key those tokens attend (a
 * token's KV at layer l depends on what it attended at layer l-1). Sets are kept as ranges per copy
 * and the closure projects whole query ranges onto key ranges with abstract verdicts, refined by
 * recursive halving (halving.ts).
 */
import type { AttentionSpec } from "../../dsl/spec.ts";
import { type Bindings, specBindings } from "../../dsl/eval.ts";
import { FALSE, type MaskOracle, maskOracle, region, tighten, TRUE } from "./abstract.ts";
import type { Range } from "../layout.ts";
import { planRetention, type RetentionPlan } from "./retention.ts";
import { halve } from "./halving.ts";

/** The tokens a prefill of P positions computes. */
export interface PrefillPlan {
  /** Copies per position. */
  K: number;
  /** Prompt length in positions. */
  P: number;
  /** Per copy, the sorted disjoint position ranges computed. */
  perCopy: Range[][];
  /** Tokens computed. */
  count: number;
  /** `count / P`: the cost relative to a vanilla prefill of the same prompt. */
  ratio: number;
}

/** A set of integers kept as sorted, disjoint, non-adjacent inclusive ranges. */
class RangeSet {
  readonly ranges: Range[] = [];

  /** True when every integer of [lo, hi] is in the set. */
  covers(lo: number, hi: number): boolean {
    const i = this.#find(lo);
    return i >= 0 && this.ranges[i].hi >= hi;
  }

  /** Adds [lo, hi]; returns the parts that were not in the set before. */
  add(lo: number, hi: number): Range[] {
    const rs = this.ranges, fresh: Range[] = [];
    // a: first range ending at or after lo - 1; b: last range starting at or before hi + 1
    let a = 0, z = rs.length;
    while (a < z) {
      const m = (a + z) >> 1;
      if (rs[m].hi < lo - 1) a = m + 1;
      else z = m;
    }
    const b = this.#firstAfter(hi + 1) - 1;
    let cur = lo;
    for (let i = a; i <= b; i++) {
      if (rs[i].lo > cur) fresh.push({ lo: cur, hi: Math.min(hi, rs[i].lo - 1) });
      cur = Math.max(cur, rs[i].hi + 1);
    }
    if (cur <= hi) fresh.push({ lo: cur, hi });
    const merged = {
      lo: Math.min(lo, a <= b ? rs[a].lo : lo),
      hi: Math.max(hi, a <= b ? rs[b].hi : hi),
    };
    rs.splice(a, Math.max(0, b - a + 1), merged);
    return fresh;
  }

  /** Number of integers in the set. */
  get size(): number {
    return this.ranges.reduce((s, r) => s + r.hi - r.lo + 1, 0);
  }

  /** Index of the range holding x, or -1. */
  #find(x: number): number {
    const i = this.#firstAfter(x) - 1;
    return i >= 0 && this.ranges[i].hi >= x ? i : -1;
  }

  /** Index of the first range starting after x. */
  #firstAfter(x: number): number {
    let a = 0, b = this.ranges.length;
    while (a < b) {
      const m = (a + b) >> 1;
      if (this.ranges[m].lo <= x) a = m + 1;
      else b = m;
    }
    return a;
  }
}

/**
 * Derives the prefill set of a prompt of P positions (P <= the retention plan's L). Pass
 * `causal: true` only for a spec proven causal (`checkCausality`): it bounds the key search.
 */
export function prefillSet(
  spec: AttentionSpec,
  o: { P: number; retention?: RetentionPlan; bindings?: Bindings; causal?: boolean },
): PrefillPlan {
  const { K } = spec, P = o.P;
  if (!Number.isInteger(P) || P < 1) throw new RangeError(`prompt length P must be >= 1, got ${P}`);
  const plan = o.retention ?? planRetention(spec, { L: P, bindings: o.bindings });
  if (plan.L < P) throw new RangeError(`retention plan covers L = ${plan.L} < P = ${P}`);
  const oracle = maskOracle(spec.mask, o.bindings ?? specBindings(spec));
  const sets = Array.from({ length: K }, () => new RangeSet());
  const work: [number, Range][] = [];
  const add = (c: number, lo: number, hi: number) => {
    for (const f of sets[c].add(lo, hi)) work.push([c, f]);
  };
  for (let c = 0; c < K; c++) {
    let start = -1;
    for (let m = 0; m <= P; m++) {
      const kept = m < P && plan.lifetime[c * plan.L + m] > P - 1;
      if (kept && start < 0) start = m;
      if (!kept && start >= 0) {
        add(c, start, m - 1);
        start = -1;
      }
    }
  }
  add(K - 1, P - 1, P - 1);
  while (work.length > 0) {
    const [qc, r] = work.pop()!;
    for (let kc = 0; kc < K; kc++) {
      // No query reads a key of copy kc `reach` or more positions before it (retention bound).
      // A proven-causal spec reads no key after the query's position.
      const from = Math.max(0, r.lo - plan.perCopy[kc].reach + 1);
      project(oracle, qc, r, kc, { lo: from, hi: o.causal ? r.hi : P - 1 }, sets[kc], add);
    }
  }
  const perCopy = sets.map((s) => s.ranges.map((r) => ({ ...r })));
  const count = sets.reduce((s, x) => s + x.size, 0);
  return { K, P, perCopy, count, ratio: count / P };
}

/** Adds every key of copy kc in range `keys` that some query of copy qc in range q attends. */
function project(
  o: MaskOracle,
  qc: number,
  q: Range,
  kc: number,
  keys: Range,
  have: RangeSet,
  add: (c: number, lo: number, hi: number) => void,
) {
  // Later queries first: in a causal mask they attend the most keys, so `have` then prunes more of
  // the earlier ones.
  halve([q.lo, q.hi + 1], [keys.lo, keys.hi + 1], (q0, q1, k0, k1) => {
    const khi = k1 - 1;
    if (have.covers(k0, khi)) return true;
    const r = region([qc, qc], [q0, q1 - 1], [kc, kc], [k0, khi]);
    if (!tighten(r)) return true;
    const v = o.verdict(r);
    if (v === FALSE) return true;
    if (v === TRUE) add(kc, k0, khi);
    else if (q1 - q0 === 1 && k1 - k0 === 1) {
      if (o.allowed(qc, q0, kc, k0)) add(kc, k0, khi);
    } else return false;
    return true;
  }, { lastRowsFirst: true });
}
