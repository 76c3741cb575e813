/**
 * Plain CPU attention, forward and backward, with a spec's mask and score modifier: the oracle the
 * WGSL kernels are tested against. `precision: "f64"` is the reference; `"f32"` rounds after every
 * operation and uses the textbook softmax, the naive float32 baseline whose error sets the
 * tolerance (FlashAttention style: the GPU may err at most ~2x as much). Tensors use the kernels'
 * storage order: `[batch, heads, N, d]`, N = K*L tokens placed by the layout.
 */
import type { FloatNode } from "../dsl/expr.ts";
import { type Bindings, evalBool, evalInt, type Pair, specBindings } from "../dsl/eval.ts";
import type { AttentionSpec } from "../dsl/spec.ts";
/** The storage layouts of docs/DESIGN.md 1.1 (the compiler's `Layout`). */
export type Layout = "interleaved" | "grouped";

/**
 * Token `[copy, pos]` stored at index s, written from docs/DESIGN.md 1.1 rather than imported
 * from the compiler it checks: interleaved `s = p*K + c`; grouped originals at `s = p`, hidden
 * `(c, p)` at `L + p*(K-1) + c-1`.
 */
export function tokenAt(layout: Layout, K: number, L: number, s: number): [number, number] {
  if (layout === "interleaved" || K === 1) return [s % K, Math.floor(s / K)];
  if (s < L) return [0, s];
  return [1 + (s - L) % (K - 1), Math.floor((s - L) / (K - 1))];
}

/** Shape and mask of an attention problem. */
export interface AttentionProblem {
  /** The spec whose mask and score modifier apply. */
  spec: AttentionSpec;
  /** Positions per copy; the sequence holds N = K*L tokens. */
  L: number;
  /** Storage order of the N tokens in every tensor. */
  layout: Layout;
  /** Sequences. */
  batch: number;
  /** Query heads. */
  heads: number;
  /** Key/value heads; divides `heads` (grouped-query attention). */
  kvHeads: number;
  /** Values per head (d). */
  headDim: number;
  /** Runtime parameter values. Default: the spec's. */
  bindings?: Bindings;
}

/** Inputs: q `[B, H, N, d]`, k and v `[B, HKV, N, d]`, and optionally the output gradient dO. */
export interface AttentionInputs {
  /** Queries `[B, H, N, d]`. */
  q: ArrayLike<number>;
  /** Keys `[B, HKV, N, d]`. */
  k: ArrayLike<number>;
  /** Values `[B, HKV, N, d]`. */
  v: ArrayLike<number>;
  /** Gradient of the output `[B, H, N, d]`; given, the backward pass runs too. */
  dO?: ArrayLike<number>;
}

/** Outputs: o `[B, H, N, d]`, lse `[B, H, N]` (natural log; -Infinity for fully masked rows) and,
 * when dO was given, the gradients of q, k and v. */
export interface AttentionOutputs {
  o: Float64Array;
  lse: Float64Array;
  dq?: Float64Array;
  dk?: Float64Array;
  dv?: Float64Array;
}

/** Value of the score modifier and its derivative with respect to the score, in float64. */
export function evalScoreDual(
  n: FloatNode,
  at: Pair,
  b: Bindings,
  s: number,
  head: number,
): [number, number] {
  const f = (x: FloatNode) => evalScoreDual(x, at, b, s, head);
  switch (n.op) {
    case "fconst":
      return [n.value, 0];
    case "score":
      return [s, 1];
    case "head":
      return [head, 0];
    case "int":
      return [evalInt(n.a, at, b), 0];
    case "fadd":
    case "fsub": {
      const [a, da] = f(n.a), [c, dc] = f(n.b), sg = n.op === "fadd" ? 1 : -1;
      return [a + sg * c, da + sg * dc];
    }
    case "fmul": {
      const [a, da] = f(n.a), [c, dc] = f(n.b);
      return [a * c, da * c + a * dc];
    }
    case "fdiv": {
      const [a, da] = f(n.a), [c, dc] = f(n.b);
      return [a / c, (da * c - a * dc) / (c * c)];
    }
    case "neg": {
      const [a, da] = f(n.a);
      return [-a, -da];
    }
    case "tanh": {
      const [a, da] = f(n.a), t = Math.tanh(a);
      return [t, (1 - t * t) * da];
    }
    case "exp2": {
      const [a, da] = f(n.a), e = Math.pow(2, a);
      return [e, e * Math.LN2 * da];
    }
    case "select":
      return evalBool(n.cond, at, b) ? f(n.a) : f(n.b);
  }
}

/** Allowed pairs in storage order: `allowed[i * N + j]` for query index i, key index j. */
export function storageMask(p: AttentionProblem): Uint8Array {
  const { spec, L, layout } = p, K = spec.K, N = K * L, b = p.bindings ?? specBindings(spec);
  const tok = Array.from({ length: N }, (_, s) => tokenAt(layout, K, L, s));
  const out = new Uint8Array(N * N);
  const at: Pair = { qc: 0, qp: 0, kc: 0, kp: 0 };
  for (let i = 0; i < N; i++) {
    [at.qc, at.qp] = tok[i];
    for (let j = 0; j < N; j++) {
      [at.kc, at.kp] = tok[j];
      out[i * N + j] = evalBool(spec.mask, at, b) ? 1 : 0;
    }
  }
  return out;
}

/**
 * Attention forward (and backward when `dO` is given) in float64, or in naive float32 (every
 * operation rounded). Fully masked rows give o = 0, lse = -Infinity and zero gradients.
 */
export function referenceAttention(
  p: AttentionProblem,
  x: AttentionInputs,
  precision: "f64" | "f32" = "f64",
): AttentionOutputs {
  const r = precision === "f32" ? Math.fround : (v: number) => v;
  const { spec, L, layout, batch: B, heads: H, kvHeads: HKV, headDim: d } = p;
  if (H % HKV !== 0) throw new RangeError(`kvHeads ${HKV} must divide heads ${H}`);
  const K = spec.K, N = K * L, G = H / HKV, bind = p.bindings ?? specBindings(spec);
  const scale = r(1 / Math.sqrt(d));
  const allowed = storageMask(p);
  const tok = Array.from({ length: N }, (_, s) => tokenAt(layout, K, L, s));
  const o = new Float64Array(B * H * N * d), lse = new Float64Array(B * H * N);
  const grads = x.dO !== undefined;
  const dq = new Float64Array(grads ? o.length : 0);
  const dk = new Float64Array(grads ? B * HKV * N * d : 0), dv = new Float64Array(dk.length);
  const s = new Float64Array(N), ds = new Float64Array(N), pr = new Float64Array(N);
  const at: Pair = { qc: 0, qp: 0, kc: 0, kp: 0 };
  const dot = (a: ArrayLike<number>, ia: number, c: ArrayLike<number>, ic: number) => {
    let acc = 0;
    for (let t = 0; t < d; t++) acc = r(acc + r(a[ia + t] * c[ic + t]));
    return acc;
  };
  for (let bb = 0; bb < B; bb++) {
    for (let h = 0; h < H; h++) {
      const qh = (bb * H + h) * N * d, kh = (bb * HKV + Math.floor(h / G)) * N * d;
      for (let i = 0; i < N; i++) {
        const qi = qh + i * d, row = (bb * H + h) * N + i;
        [at.qc, at.qp] = tok[i];
        let m = -Infinity;
        for (let j = 0; j < N; j++) {
          if (!allowed[i * N + j]) continue;
          const raw = r(dot(x.q, qi, x.k, kh + j * d) * scale);
          if (spec.score) {
            [at.kc, at.kp] = tok[j];
            const [v, dv] = evalScoreDual(spec.score, at, bind, raw, h);
            s[j] = r(v);
            ds[j] = r(dv);
          } else {
            s[j] = raw;
            ds[j] = 1;
          }
          m = Math.max(m, s[j]);
        }
        if (m === -Infinity) { // fully masked row: zero output, zero gradients
          lse[row] = -Infinity;
          continue;
        }
        let l = 0;
        for (let j = 0; j < N; j++) {
          if (!allowed[i * N + j]) continue;
          pr[j] = r(Math.exp(r(s[j] - m)));
          l = r(l + pr[j]);
        }
        lse[row] = m + Math.log(l);
        for (let j = 0; j < N; j++) {
          if (!allowed[i * N + j]) continue;
          pr[j] = r(pr[j] / l);
          for (let t = 0; t < d; t++) o[qi + t] = r(o[qi + t] + r(pr[j] * x.v[kh + j * d + t]));
        }
        if (!grads) continue;
        const dO = x.dO!;
        const D = dot(dO, qi, o, qi);
        for (let j = 0; j < N; j++) {
          if (!allowed[i * N + j]) continue;
          const kj = kh + j * d;
          const g = r(r(r(pr[j] * r(dot(dO, qi, x.v, kj) - D)) * ds[j]) * scale);
          for (let t = 0; t < d; t++) {
            dq[qi + t] = r(dq[qi + t] + r(g * x.k[kj + t]));
            dk[kj + t] = r(dk[kj + t] + r(g * x.q[qi + t]));
            dv[kj + t] = r(dv[kj + t] + r(pr[j] * dO[qi + t]));
          }
        }
      }
    }
  }
  return grads ? { o, lse, dq, dk, dv } : { o, lse };
}

/** Max |a - b| over indices where `b` is finite; a -Infinity LSE must come back as NEG_BIG. */
export function maxAbsErr(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) {
    if (Number.isFinite(b[i])) m = Math.max(m, Math.abs(a[i] - b[i]));
    else if (!(a[i] <= -1e38)) return Infinity;
  }
  return m;
}

/**
 * Error floor per unit of an output's magnitude (applied as `ERROR_FLOOR * max(1, max |ref|)`):
 * keeps exact (0-error) baselines from demanding bit equality, and leaves room for what WGSL lets
 * a device's `exp` and `tanh` be off by (a few ulps, and `exp`'s grows with |x|), which the CPU's
 * correctly rounded naive float32 yardstick does not show: a score modifier such as softcap(s, 3)
 * turns a few ulps of tanh into ~1e-6 of relative error in every probability (fuzzing found a
 * 2-position case at 1.19e-6 against a naive error of 6e-8). About 16 float32 ulps at 1.
 */
export const ERROR_FLOOR = 2e-6;

/** The floor of one output: `ERROR_FLOOR` scaled by its largest reference magnitude (at least 1). */
export function errorFloor(ref: ArrayLike<number>): number {
  let m = 1;
  for (let i = 0; i < ref.length; i++) {
    if (Number.isFinite(ref[i])) m = Math.max(m, Math.abs(ref[i]));
  }
  return ERROR_FLOOR * m;
}

/** One output's error against the float64 reference, beside the naive float32 error. */
export interface OutputError {
  /** Max absolute error of the checked output. */
  err: number;
  /** Max absolute error of the naive float32 CPU computation (the yardstick). */
  naive: number;
  /** The error allowed: twice the naive error, plus the floor (`errorFloor`; 1e-5 for lse). */
  allowed: number;
  /** FlashAttention's rule: `err <= allowed`. */
  ok: boolean;
}

/**
 * Errors of o, dq, dk, dv (those the reference has) and lse against the float64 reference, each
 * judged against the naive float32 error (lse with a 1e-5 floor: it is a log-sum of N terms).
 */
export function attentionErrors(
  got: Partial<Record<"o" | "lse" | "dq" | "dk" | "dv", ArrayLike<number>>>,
  ref: AttentionOutputs,
  naive: AttentionOutputs,
): Record<string, OutputError> {
  const out: Record<string, OutputError> = {};
  for (const k of ["o", "dq", "dk", "dv", "lse"] as const) {
    if (!ref[k] || !got[k]) continue;
    const err = maxAbsErr(got[k]!, ref[k]!), base = maxAbsErr(naive[k]!, ref[k]!);
    const allowed = 2 * base + (k === "lse" ? 1e-5 : errorFloor(ref[k]!));
    out[k] = { err, naive: base, allowed, ok: err <= allowed };
  }
  return out;
}
