/**
 * Abstract evaluation of a mask over a whole region of query/key pairs at once, the engine of
 * every analysis. A region is a box of copy and position ranges, optionally cut by a bound on the
 * position difference `kp - qp` (which makes "is the key later than the query?" exact). Integer
 * values are affine forms in the four coordinates while they stay affine (so `k.pos <= q.pos` or
 * `h(j,n) - W < h(i,m)` are decided exactly), intervals otherwise; conditions are three-valued.
 * The verdict is sound: TRUE means every pair in the region is allowed, FALSE none, MAYBE unknown.
 * Also here: the mask compiled to a plain JS predicate, for single pairs.
 */
import type { BoolNode, IntNode } from "../../dsl/expr.ts";
import { type Bindings, floorDiv, floorMod, segmentOf } from "../../dsl/eval.ts";

/** Three-valued verdicts. */
export const FALSE = 0, TRUE = 1, MAYBE = 2;
/** A verdict over a region. */
export type Verdict = 0 | 1 | 2;

/**
 * A region of pairs: inclusive ranges of query copy/pos and key copy/pos, and an inclusive bound
 * on `kp - qp` (use ±Infinity for none). Coordinates are indexed 0 qc, 1 qp, 2 kc, 3 kp.
 */
export interface Region {
  lo: [number, number, number, number];
  hi: [number, number, number, number];
  dlo: number;
  dhi: number;
}

/** Builds a region; `d` bounds `kp - qp`. */
export function region(
  qc: [number, number],
  qp: [number, number],
  kc: [number, number],
  kp: [number, number],
  d: [number, number] = [-Infinity, Infinity],
): Region {
  return {
    lo: [qc[0], qp[0], kc[0], kp[0]],
    hi: [qc[1], qp[1], kc[1], kp[1]],
    dlo: d[0],
    dhi: d[1],
  };
}

/**
 * Tightens the position ranges with the difference bound, in place. Returns false if the region
 * holds no pair.
 */
export function tighten(r: Region): boolean {
  r.lo[3] = Math.max(r.lo[3], r.lo[1] + r.dlo);
  r.hi[3] = Math.min(r.hi[3], r.hi[1] + r.dhi);
  r.lo[1] = Math.max(r.lo[1], r.lo[3] - r.dhi);
  r.hi[1] = Math.min(r.hi[1], r.hi[3] - r.dlo);
  r.dlo = Math.max(r.dlo, r.lo[3] - r.hi[1]);
  r.dhi = Math.min(r.dhi, r.hi[3] - r.lo[1]);
  for (let i = 0; i < 4; i++) if (r.lo[i] > r.hi[i]) return false;
  return r.dlo <= r.dhi;
}

/** An abstract integer: affine `c + a0·qc + a1·qp + a2·kc + a3·kp` when `aff`, else an interval. */
interface AbsInt {
  aff: boolean;
  a0: number;
  a1: number;
  a2: number;
  a3: number;
  c: number;
  lo: number;
  hi: number;
}

function constant(v: number): AbsInt {
  return { aff: true, a0: 0, a1: 0, a2: 0, a3: 0, c: v, lo: v, hi: v };
}

function interval(lo: number, hi: number): AbsInt {
  return { aff: false, a0: 0, a1: 0, a2: 0, a3: 0, c: 0, lo, hi };
}

function affine(a0: number, a1: number, a2: number, a3: number, c: number, r: Region): AbsInt {
  const v: AbsInt = { aff: true, a0, a1, a2, a3, c, lo: c, hi: c };
  affineRange(v, r);
  return v;
}

/** Low end of `k·x` for x in [lo, hi]. */
function mulLo(lo: number, hi: number, k: number): number {
  return k === 0 ? 0 : k > 0 ? lo * k : hi * k;
}
/** High end of `k·x` for x in [lo, hi]. */
function mulHi(lo: number, hi: number, k: number): number {
  return k === 0 ? 0 : k > 0 ? hi * k : lo * k;
}

/** Sets the range of an affine form over a region (exact on boxes and on difference forms). */
function affineRange(v: AbsInt, r: Region) {
  const { lo: L, hi: H } = r;
  let lo = v.c + mulLo(L[0], H[0], v.a0) + mulLo(L[2], H[2], v.a2);
  let hi = v.c + mulHi(L[0], H[0], v.a0) + mulHi(L[2], H[2], v.a2);
  const boxLo = mulLo(L[1], H[1], v.a1) + mulLo(L[3], H[3], v.a3);
  const boxHi = mulHi(L[1], H[1], v.a1) + mulHi(L[3], H[3], v.a3);
  if (v.a1 !== 0 && v.a3 !== 0 && (r.dlo > -Infinity || r.dhi < Infinity)) {
    // a1·qp + a3·kp = a3·(kp - qp) + (a1 + a3)·qp: exact when a1 = -a3.
    const s = v.a1 + v.a3;
    lo += Math.max(mulLo(r.dlo, r.dhi, v.a3) + mulLo(L[1], H[1], s), boxLo);
    hi += Math.min(mulHi(r.dlo, r.dhi, v.a3) + mulHi(L[1], H[1], s), boxHi);
  } else {
    lo += boxLo;
    hi += boxHi;
  }
  v.lo = lo;
  v.hi = hi;
}

type IntFn = (r: Region) => AbsInt;
type BoolFn = (r: Region) => Verdict;

const VAR_INDEX = { q: { copy: 0, pos: 1 }, k: { copy: 2, pos: 3 } } as const;

function compileInt(n: IntNode, b: Bindings): IntFn {
  switch (n.op) {
    case "const":
      return () => constant(n.value);
    case "param": {
      const v = b.params[n.name];
      if (v === undefined) throw new ReferenceError(`no value for parameter ${n.name}`);
      return () => constant(v);
    }
    case "var": {
      const i = VAR_INDEX[n.side][n.field];
      return (r) => ({
        aff: true,
        a0: i === 0 ? 1 : 0,
        a1: i === 1 ? 1 : 0,
        a2: i === 2 ? 1 : 0,
        a3: i === 3 ? 1 : 0,
        c: 0,
        lo: r.lo[i],
        hi: r.hi[i],
      });
    }
    case "seg": {
      const t = b.tables[n.name];
      if (t === undefined) throw new ReferenceError(`no value for table ${n.name}`);
      const of = compileInt(n.of, b);
      return (r) => {
        const x = of(r);
        return interval(segmentOf(t, x.lo), segmentOf(t, x.hi));
      };
    }
    case "add":
    case "sub": {
      const fa = compileInt(n.a, b), fb = compileInt(n.b, b), s = n.op === "add" ? 1 : -1;
      return (r) => {
        const x = fa(r), y = fb(r);
        if (x.aff && y.aff) {
          return affine(
            x.a0 + s * y.a0,
            x.a1 + s * y.a1,
            x.a2 + s * y.a2,
            x.a3 + s * y.a3,
            x.c + s * y.c,
            r,
          );
        }
        return s > 0 ? interval(x.lo + y.lo, x.hi + y.hi) : interval(x.lo - y.hi, x.hi - y.lo);
      };
    }
    case "mul": {
      const fa = compileInt(n.a, b), fb = compileInt(n.b, b);
      return (r) => {
        const x = fa(r), y = fb(r);
        const k = isConst(y) ? y.lo : isConst(x) ? x.lo : undefined;
        const v = isConst(y) ? x : y;
        if (k !== undefined && v.aff) {
          return affine(v.a0 * k, v.a1 * k, v.a2 * k, v.a3 * k, v.c * k, r);
        }
        const p1 = prod(x.lo, y.lo),
          p2 = prod(x.lo, y.hi),
          p3 = prod(x.hi, y.lo),
          p4 = prod(x.hi, y.hi);
        return interval(Math.min(p1, p2, p3, p4), Math.max(p1, p2, p3, p4));
      };
    }
    case "div":
    case "mod": {
      const fa = compileInt(n.a, b), fb = compileInt(n.b, b);
      return (r) => {
        const x = fa(r), y = fb(r);
        if (y.lo <= 0) {
          throw new RangeError(`divisor ${y.lo} in a mask expression may be <= 0 (must be > 0)`);
        }
        if (isConst(x)) {
          return constant(n.op === "div" ? floorDiv(x.lo, y.lo) : floorMod(x.lo, y.lo));
        }
        if (n.op === "div") {
          const p1 = Math.floor(x.lo / y.lo), p2 = Math.floor(x.lo / y.hi);
          const p3 = Math.floor(x.hi / y.lo), p4 = Math.floor(x.hi / y.hi);
          return interval(Math.min(p1, p2, p3, p4), Math.max(p1, p2, p3, p4));
        }
        if (isConst(y) && Math.floor(x.lo / y.lo) === Math.floor(x.hi / y.lo)) {
          return interval(floorMod(x.lo, y.lo), floorMod(x.hi, y.lo));
        }
        return interval(0, y.hi - 1);
      };
    }
    case "min":
    case "max": {
      const fa = compileInt(n.a, b), fb = compileInt(n.b, b), f = Math[n.op];
      return (r) => {
        const x = fa(r), y = fb(r);
        if (x.hi <= y.lo) return n.op === "min" ? x : y;
        if (y.hi <= x.lo) return n.op === "min" ? y : x;
        return interval(f(x.lo, y.lo), f(x.hi, y.hi));
      };
    }
  }
}

/** A product of interval ends where 0·∞ counts as 0. */
function prod(a: number, b: number): number {
  return a === 0 || b === 0 ? 0 : a * b;
}

function isConst(v: AbsInt): boolean {
  return v.lo === v.hi;
}

function compileBool(n: BoolNode, b: Bindings): BoolFn {
  switch (n.op) {
    case "lit": {
      const v: Verdict = n.value ? TRUE : FALSE;
      return () => v;
    }
    case "not": {
      const f = compileBool(n.a, b);
      return (r) => {
        const v = f(r);
        return v === MAYBE ? MAYBE : v === TRUE ? FALSE : TRUE;
      };
    }
    case "and":
    case "or": {
      const fs = n.args.map((x) => compileBool(x, b));
      const stop: Verdict = n.op === "and" ? FALSE : TRUE,
        rest: Verdict = n.op === "and" ? TRUE : FALSE;
      return (r) => {
        let out: Verdict = rest;
        for (const f of fs) {
          const v = f(r);
          if (v === stop) return stop;
          if (v === MAYBE) out = MAYBE;
        }
        return out;
      };
    }
    case "cmp": {
      const diff = compileInt({ op: "sub", a: n.a, b: n.b }, b);
      const test = CMP[n.cmp];
      return (r) => {
        const d = diff(r);
        return test(d.lo, d.hi);
      };
    }
  }
}

/** Verdict of `x OP 0` for x in [lo, hi]. */
const CMP: Record<string, (lo: number, hi: number) => Verdict> = {
  eq: (lo, hi) => (lo === 0 && hi === 0 ? TRUE : lo > 0 || hi < 0 ? FALSE : MAYBE),
  ne: (lo, hi) => (lo === 0 && hi === 0 ? FALSE : lo > 0 || hi < 0 ? TRUE : MAYBE),
  lt: (lo, hi) => (hi < 0 ? TRUE : lo >= 0 ? FALSE : MAYBE),
  le: (lo, hi) => (hi <= 0 ? TRUE : lo > 0 ? FALSE : MAYBE),
  gt: (lo, hi) => (lo > 0 ? TRUE : hi <= 0 ? FALSE : MAYBE),
  ge: (lo, hi) => (lo >= 0 ? TRUE : hi < 0 ? FALSE : MAYBE),
};

/** A mask prepared for analysis: the abstract verdict over regions and the exact pair test. */
export interface MaskOracle {
  /** Sound verdict over a (tightened, non-empty) region. */
  verdict(r: Region): Verdict;
  /** Exact value at one pair. */
  allowed(qc: number, qp: number, kc: number, kp: number): boolean;
}

/** Prepares a mask for analysis under fixed parameter values. */
export function maskOracle(mask: BoolNode, b: Bindings): MaskOracle {
  return { verdict: compileBool(mask, b), allowed: compilePredicate(mask, b) };
}

/** Compiles a mask to a JS predicate (parameters inlined) for fast single-pair evaluation. */
function compilePredicate(
  mask: BoolNode,
  b: Bindings,
): (qc: number, qp: number, kc: number, kp: number) => boolean {
  const tables: (readonly number[])[] = [];
  const int = (n: IntNode): string => {
    switch (n.op) {
      case "const":
        return `(${n.value})`;
      case "var":
        return `${n.side}${n.field === "copy" ? "c" : "p"}`;
      case "param": {
        const v = b.params[n.name];
        if (v === undefined) throw new ReferenceError(`no value for parameter ${n.name}`);
        return `(${v})`;
      }
      case "seg": {
        const t = b.tables[n.name];
        if (t === undefined) throw new ReferenceError(`no value for table ${n.name}`);
        tables.push(t);
        return `seg(T[${tables.length - 1}], ${int(n.of)})`;
      }
      case "add":
        return `(${int(n.a)} + ${int(n.b)})`;
      case "sub":
        return `(${int(n.a)} - ${int(n.b)})`;
      case "mul":
        return `(${int(n.a)} * ${int(n.b)})`;
      case "div":
        return `fdiv(${int(n.a)}, ${int(n.b)})`;
      case "mod":
        return `fmod(${int(n.a)}, ${int(n.b)})`;
      case "min":
      case "max":
        return `Math.${n.op}(${int(n.a)}, ${int(n.b)})`;
    }
  };
  const ops = { eq: "===", ne: "!==", lt: "<", le: "<=", gt: ">", ge: ">=" };
  const bool = (n: BoolNode): string => {
    switch (n.op) {
      case "lit":
        return String(n.value);
      case "not":
        return `!(${bool(n.a)})`;
      case "cmp":
        return `(${int(n.a)} ${ops[n.cmp]} ${int(n.b)})`;
      default:
        if (n.args.length === 0) return n.op === "and" ? "true" : "false";
        return `(${n.args.map(bool).join(n.op === "and" ? " && " : " || ")})`;
    }
  };
  const body = `return (qc, qp, kc, kp) => ${bool(mask)};`;
  return new Function("fdiv", "fmod", "seg", "T", body)(floorDiv, floorMod, segmentOf, tables);
}

/** A query/key pair `[qc, qp, kc, kp]` found in a region. */
export type Witness = [number, number, number, number];

/** What `explore` found: an allowed pair and/or a forbidden pair of the region. */
export interface Found {
  allowed?: Witness;
  forbidden?: Witness;
}

/** Some pair of a tightened region (its lowest query, then its lowest key). */
function firstPair(r: Region): Witness {
  const qp = r.lo[1];
  return [r.lo[0], qp, r.lo[2], Math.max(r.lo[3], qp + r.dlo)];
}

/**
 * Exact search of a region for an allowed and/or a forbidden pair, stopping as soon as what is
 * wanted is found. Abstract verdicts prune whole sub-regions; only undecided single pairs are
 * evaluated one by one, so the cost follows the mask's boundary, not the region's area.
 */
export function explore(
  o: MaskOracle,
  r: Region,
  want: { allowed: boolean; forbidden: boolean },
  found: Found = {},
): Found {
  const done = () => (!want.allowed || found.allowed) && (!want.forbidden || found.forbidden);
  const visit = (x: Region) => {
    if (done() || !tighten(x)) return;
    const v = o.verdict(x);
    if (v !== MAYBE) {
      if (v === TRUE) found.allowed ??= firstPair(x);
      else found.forbidden ??= firstPair(x);
      return;
    }
    const p = firstPair(x);
    if (o.allowed(...p)) found.allowed ??= p;
    else found.forbidden ??= p;
    let dim = -1, width = 0;
    for (let i = 0; i < 4; i++) {
      if (x.hi[i] - x.lo[i] > width) [dim, width] = [i, x.hi[i] - x.lo[i]];
    }
    if (dim < 0) return; // a single pair, evaluated above
    const mid = x.lo[dim] + Math.floor(width / 2);
    const a = copyRegion(x), b = copyRegion(x);
    a.hi[dim] = mid;
    b.lo[dim] = mid + 1;
    visit(a);
    visit(b);
  };
  visit(copyRegion(r));
  return found;
}

/** A copy of a region (regions are tightened in place). */
function copyRegion(r: Region): Region {
  return { lo: [...r.lo], hi: [...r.hi], dlo: r.dlo, dhi: r.dhi };
}
