/**
 * The reference meaning of a spec: a plain tree-walking interpreter and the dense mask it gives
 * over the expanded sequence, in the canonical interleaved order `t = p*K + c` (docs/DESIGN.md 1.1).
 * Deliberately naive: tests and small pictures trust it; the compiler's analysis never uses it.
 */
import type { BoolNode, FloatNode, IntNode } from "./expr.ts";
import type { AttentionSpec } from "./spec.ts";

/** Values of the runtime parameters and tables an expression reads. */
export interface Bindings {
  /** Runtime integer parameters by name. */
  params: Readonly<Record<string, number>>;
  /** Runtime segment tables (sorted start offsets) by name. */
  tables: Readonly<Record<string, readonly number[]>>;
}

/** One query/key pair: copies and positions. */
export interface Pair {
  /** The query's copy (0: the original). */
  qc: number;
  /** The query's position. */
  qp: number;
  /** The key's copy (0: the original). */
  kc: number;
  /** The key's position. */
  kp: number;
}

/** Floor division; a non-positive divisor is an error (masks divide by chunk sizes). */
export function floorDiv(a: number, b: number): number {
  if (b <= 0) throw new RangeError(`division by ${b} in a mask expression (divisors must be > 0)`);
  return Math.floor(a / b);
}

/** Floor modulo (result in [0, b)); a non-positive divisor is an error. */
export function floorMod(a: number, b: number): number {
  return a - floorDiv(a, b) * b;
}

/** Segment index of x in a sorted start table: the number of starts <= x, minus one. */
export function segmentOf(table: readonly number[], x: number): number {
  let n = 0;
  while (n < table.length && table[n] <= x) n++;
  return n - 1;
}

/** Evaluates an integer expression at one pair. */
export function evalInt(n: IntNode, at: Pair, b: Bindings): number {
  switch (n.op) {
    case "const":
      return n.value;
    case "var":
      return n.side === "q"
        ? (n.field === "copy" ? at.qc : at.qp)
        : n.field === "copy"
        ? at.kc
        : at.kp;
    case "param": {
      const v = b.params[n.name];
      if (v === undefined) throw new ReferenceError(`no value for parameter ${n.name}`);
      return v;
    }
    case "seg": {
      const t = b.tables[n.name];
      if (t === undefined) throw new ReferenceError(`no value for table ${n.name}`);
      return segmentOf(t, evalInt(n.of, at, b));
    }
    case "add":
      return evalInt(n.a, at, b) + evalInt(n.b, at, b);
    case "sub":
      return evalInt(n.a, at, b) - evalInt(n.b, at, b);
    case "mul":
      return evalInt(n.a, at, b) * evalInt(n.b, at, b);
    case "div":
      return floorDiv(evalInt(n.a, at, b), evalInt(n.b, at, b));
    case "mod":
      return floorMod(evalInt(n.a, at, b), evalInt(n.b, at, b));
    case "min":
      return Math.min(evalInt(n.a, at, b), evalInt(n.b, at, b));
    case "max":
      return Math.max(evalInt(n.a, at, b), evalInt(n.b, at, b));
  }
}

/** Evaluates a boolean expression at one pair. */
export function evalBool(n: BoolNode, at: Pair, b: Bindings): boolean {
  switch (n.op) {
    case "lit":
      return n.value;
    case "not":
      return !evalBool(n.a, at, b);
    case "and":
      return n.args.every((x) => evalBool(x, at, b));
    case "or":
      return n.args.some((x) => evalBool(x, at, b));
    case "cmp": {
      const x = evalInt(n.a, at, b), y = evalInt(n.b, at, b);
      switch (n.cmp) {
        case "eq":
          return x === y;
        case "ne":
          return x !== y;
        case "lt":
          return x < y;
        case "le":
          return x <= y;
        case "gt":
          return x > y;
        case "ge":
          return x >= y;
      }
    }
  }
}

/** Evaluates a score modifier in float64 at one pair, given the logit and the head. */
export function evalFloat(
  n: FloatNode,
  at: Pair,
  b: Bindings,
  score: number,
  head: number,
): number {
  const f = (x: FloatNode) => evalFloat(x, at, b, score, head);
  switch (n.op) {
    case "fconst":
      return n.value;
    case "score":
      return score;
    case "head":
      return head;
    case "int":
      return evalInt(n.a, at, b);
    case "fadd":
      return f(n.a) + f(n.b);
    case "fsub":
      return f(n.a) - f(n.b);
    case "fmul":
      return f(n.a) * f(n.b);
    case "fdiv":
      return f(n.a) / f(n.b);
    case "tanh":
      return Math.tanh(f(n.a));
    case "neg":
      return -f(n.a);
    case "exp2":
      return Math.pow(2, f(n.a));
    case "select":
      return evalBool(n.cond, at, b) ? f(n.a) : f(n.b);
  }
}

/** The bindings a spec declares (its defaults). */
export function specBindings(spec: AttentionSpec): Bindings {
  return { params: spec.params, tables: spec.tables };
}

/** A dense mask in canonical order: `allowed[qi * N + ki]`, N = K*L. */
export interface DenseMask {
  /** Copies per position. */
  K: number;
  /** Positions; the mask is N x N with N = K*L. */
  L: number;
  /** `[copy, pos]` of each canonical index. */
  tokens: [number, number][];
  /** 1 where query `qi` may attend key `ki`, at `qi * N + ki`; else 0. */
  allowed: Uint8Array;
}

/** Evaluates the mask at every pair of an expanded sequence of L positions. O((K*L)^2). */
export function denseMask(
  spec: AttentionSpec,
  L: number,
  b: Bindings = specBindings(spec),
): DenseMask {
  const K = spec.K, N = K * L;
  const tokens: [number, number][] = [];
  for (let t = 0; t < N; t++) tokens.push([t % K, Math.floor(t / K)]);
  const allowed = new Uint8Array(N * N);
  const at: Pair = { qc: 0, qp: 0, kc: 0, kp: 0 };
  for (let qi = 0; qi < N; qi++) {
    [at.qc, at.qp] = tokens[qi];
    for (let ki = 0; ki < N; ki++) {
      [at.kc, at.kp] = tokens[ki];
      allowed[qi * N + ki] = evalBool(spec.mask, at, b) ? 1 : 0;
    }
  }
  return { K, L, tokens, allowed } satisfies DenseMask;
}
