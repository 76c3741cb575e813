/**
 * WGSL code generation for the expressions of a spec: the mask predicate becomes
 * `mask_allowed(qc, qp, kc, kp) -> bool`, the score modifier `score_mod(s, qc, qp, kc, kp, head)
 * -> f32` plus `score_mod_grad(...) -> vec2<f32>` (value and d/ds, by forward-mode
 * differentiation, for the backward pass). Integer semantics equal dsl/eval.ts: WGSL `/` and
 * `%` truncate, so floor versions are emitted. Runtime parameters and segment tables are read from
 * the uniform `U` and the storage array `mask_tables`; this module also owns that uniform contract
 * (field names, packing), so changing a parameter's value never changes the source.
 */
import type { BoolNode, FloatNode, IntNode } from "../../dsl/expr.ts";
import { paramsOf } from "../../dsl/expr.ts";
import type { Bindings } from "../../dsl/eval.ts";
import type { AttentionSpec } from "../../dsl/spec.ts";

/** The parts of a spec that code generation reads (everything baked into the WGSL). */
export type SpecCode = Pick<AttentionSpec, "K" | "mask" | "score" | "params" | "tables">;

/** Uniform fields (all 4-byte `i32`) carrying a spec's runtime parameters and table extents. */
export function specUniformFields(spec: SpecCode): string[] {
  return [
    ...paramNames(spec).map((p) => `p_${p}`),
    ...tableNames(spec).flatMap((t) => [`t_${t}_off`, `t_${t}_len`]),
  ];
}

/** Parameter names in uniform order. */
function paramNames(spec: SpecCode): string[] {
  return Object.keys(spec.params).sort();
}

/** Names of the tables the mask or score reads, in storage order (unread tables are not bound). */
export function tableNames(spec: SpecCode): string[] {
  const used = paramsOf(spec.mask);
  if (spec.score) paramsOf(spec.score, used);
  return Object.keys(spec.tables).filter((t) => used.has(t)).sort();
}

/**
 * Values of `specUniformFields` for given bindings, and the concatenated tables (at least one
 * entry, so the buffer is never empty).
 */
export function packSpecBindings(
  spec: SpecCode,
  b: Bindings,
): { fields: number[]; tables: Int32Array } {
  const fields: number[] = [];
  for (const p of paramNames(spec)) {
    const v = b.params[p];
    if (!Number.isInteger(v)) throw new RangeError(`no integer value for parameter ${p}, got ${v}`);
    fields.push(v);
  }
  const data: number[] = [];
  const extents: number[] = [];
  for (const t of tableNames(spec)) {
    const tab = b.tables[t];
    if (!tab) throw new ReferenceError(`no value for table ${t}`);
    if (tab.length >= 2 ** SEG_STEPS) {
      throw new RangeError(
        `table ${t} has ${tab.length} entries, the kernels search at most ${2 ** SEG_STEPS - 1}`,
      );
    }
    extents.push(data.length, tab.length);
    data.push(...tab);
  }
  if (data.length === 0) data.push(0);
  return { fields: [...fields, ...extents], tables: Int32Array.from(data) };
}

const CMP = { eq: "==", ne: "!=", lt: "<", le: "<=", gt: ">", ge: ">=" } as const;

/**
 * Halvings of the segment lookup, written out: a table of at most 2^16 - 1 entries is searched
 * in 16 (`packSpecBindings` refuses longer tables). No loop: the mask runs per pair inside the
 * kernels' key walks, and on Mesa's llvmpipe and lavapipe every loop pass counts against one
 * invocation's loop budget (runtime/gpu/device.ts `GpuContext.loopBudget`).
 */
const SEG_STEPS = 16;

const HELPERS = {
  // Divisors are positive (the DSL requires it). Only non-negative operands reach `/`: WGSL
  // truncates, but backends differ on negatives (llvmpipe over GL computes `%` unsigned).
  floor_div: `fn floor_div(a: i32, b: i32) -> i32 {
  if (a >= 0) {
    return a / b;
  }
  return -((b - 1 - a) / b);
}`,
  floor_mod: `fn floor_mod(a: i32, b: i32) -> i32 {
  return a - floor_div(a, b) * b;
}`,
  // Number of table entries <= x, minus one: a binary search over a sorted start table, each
  // halving written out (SEG_STEPS) so that the mask has no loop.
  seg_index: `fn seg_index(off: i32, len: i32, x: i32) -> i32 {
  var lo = 0;
  var hi = len;
  ${
    Array(SEG_STEPS).fill(
      "if (lo < hi) { let mid = (lo + hi) / 2; " +
        "if (mask_tables[off + mid] <= x) { lo = mid + 1; } else { hi = mid; } }",
    ).join("\n  ")
  }
  return lo - 1;
}`,
  // Builtin tanh overflows to NaN for large |x| on some drivers.
  safe_tanh: `fn safe_tanh(x: f32) -> f32 {
  let e = exp(-2.0 * abs(x));
  return sign(x) * (1.0 - e) / (1.0 + e);
}`,
} as const;
type Helper = keyof typeof HELPERS;

/** Emits expressions, remembering which helper functions they call. */
class Emitter {
  helpers = new Set<Helper>();
  lines: string[] = [];
  #n = 0;

  int(n: IntNode): string {
    switch (n.op) {
      case "const":
        if (!Number.isSafeInteger(n.value) || Math.abs(n.value) >= 2 ** 31) {
          throw new RangeError(`integer constant ${n.value} does not fit an i32`);
        }
        return n.value < 0 ? `(${n.value}i)` : `${n.value}i`;
      case "var":
        return `${n.side}${n.field === "copy" ? "c" : "p"}`;
      case "param":
        return `U.p_${n.name}`;
      case "seg":
        this.helpers.add("seg_index");
        return `seg_index(U.t_${n.name}_off, U.t_${n.name}_len, ${this.int(n.of)})`;
      case "add":
        return `(${this.int(n.a)} + ${this.int(n.b)})`;
      case "sub":
        return `(${this.int(n.a)} - ${this.int(n.b)})`;
      case "mul":
        return `(${this.int(n.a)} * ${this.int(n.b)})`;
      case "div":
      case "mod": {
        const f = n.op === "div" ? "floor_div" : "floor_mod";
        this.helpers.add("floor_div");
        this.helpers.add(f);
        return `${f}(${this.int(n.a)}, ${this.int(n.b)})`;
      }
      case "min":
      case "max":
        return `${n.op}(${this.int(n.a)}, ${this.int(n.b)})`;
    }
  }

  bool(n: BoolNode): string {
    switch (n.op) {
      case "lit":
        return String(n.value);
      case "cmp":
        return `(${this.int(n.a)} ${CMP[n.cmp]} ${this.int(n.b)})`;
      case "not":
        return `!${this.bool(n.a)}`;
      default:
        if (n.args.length === 0) return n.op === "and" ? "true" : "false";
        return `(${n.args.map((a) => this.bool(a)).join(n.op === "and" ? " && " : " || ")})`;
    }
  }

  #let(expr: string): string {
    const name = `f${this.#n++}`;
    this.lines.push(`  let ${name} = ${expr};`);
    return name;
  }

  /** A float node as a (value, derivative w.r.t. the score) pair of SSA names or literals. */
  dual(n: FloatNode): { v: string; d: string } {
    const zero = "0.0";
    switch (n.op) {
      case "fconst":
        if (!Number.isFinite(n.value)) throw new RangeError(`float constant ${n.value}`);
        return { v: `f32(${n.value})`, d: zero };
      case "score":
        return { v: "s", d: "1.0" };
      case "head":
        return { v: "f32(head)", d: zero };
      case "int":
        return { v: this.#let(`f32(${this.int(n.a)})`), d: zero };
      case "fadd":
      case "fsub": {
        const a = this.dual(n.a), b = this.dual(n.b), o = n.op === "fadd" ? "+" : "-";
        return { v: this.#let(`${a.v} ${o} ${b.v}`), d: this.#let(`${a.d} ${o} ${b.d}`) };
      }
      case "fmul": {
        const a = this.dual(n.a), b = this.dual(n.b);
        return {
          v: this.#let(`${a.v} * ${b.v}`),
          d: this.#let(`${a.d} * ${b.v} + ${a.v} * ${b.d}`),
        };
      }
      case "fdiv": {
        const a = this.dual(n.a), b = this.dual(n.b);
        const v = this.#let(`${a.v} / ${b.v}`);
        return { v, d: this.#let(`(${a.d} - ${v} * ${b.d}) / ${b.v}`) };
      }
      case "neg": {
        const a = this.dual(n.a);
        return { v: this.#let(`-${a.v}`), d: this.#let(`-${a.d}`) };
      }
      case "tanh": {
        this.helpers.add("safe_tanh");
        const a = this.dual(n.a);
        const v = this.#let(`safe_tanh(${a.v})`);
        return { v, d: this.#let(`(1.0 - ${v} * ${v}) * ${a.d}`) };
      }
      case "exp2": {
        const a = this.dual(n.a);
        const v = this.#let(`exp2(${a.v})`);
        return { v, d: this.#let(`${v} * ${Math.LN2} * ${a.d}`) };
      }
      case "select": {
        const c = this.#let(this.bool(n.cond));
        const a = this.dual(n.a), b = this.dual(n.b);
        return {
          v: this.#let(`select(${b.v}, ${a.v}, ${c})`),
          d: this.#let(`select(${b.d}, ${a.d}, ${c})`),
        };
      }
    }
  }
}

/** The WGSL of a spec's expressions: helper functions, then the mask and score functions. */
export interface ExprCode {
  /** Helper functions the expressions call (floor division, segment lookup ...). */
  helpers: string;
  /** `fn mask_allowed(qc: i32, qp: i32, kc: i32, kp: i32) -> bool`. */
  mask: string;
  /**
   * `fn score_mod(s: f32, qc: i32, qp: i32, kc: i32, kp: i32, head: i32) -> f32`, preceded by
   * `score_mod_grad` when the spec has a modifier (the value is read from the dual function).
   */
  score: string;
  /** `fn score_mod_grad(...) -> vec2<f32>`: the modified score and its derivative w.r.t. `s`. */
  scoreGrad: string;
  /** True when the spec has a score modifier (else the score functions are the identity). */
  hasScore: boolean;
  /** True when the expressions read `mask_tables` (the kernel must bind it). */
  usesTables: boolean;
}

const COORDS = "qc: i32, qp: i32, kc: i32, kp: i32";

/** Generates the WGSL functions of a spec's mask and score modifier. */
export function exprCode(spec: SpecCode): ExprCode {
  const e = new Emitter();
  const mask = `fn mask_allowed(${COORDS}) -> bool {\n  return ${e.bool(spec.mask)};\n}`;
  let score = `fn score_mod(s: f32, ${COORDS}, head: i32) -> f32 {\n  return s;\n}`;
  let scoreGrad =
    `fn score_mod_grad(s: f32, ${COORDS}, head: i32) -> vec2<f32> {\n  return vec2<f32>(s, 1.0);\n}`;
  if (spec.score) {
    const g = new Emitter();
    const r = g.dual(spec.score);
    scoreGrad = `fn score_mod_grad(s: f32, ${COORDS}, head: i32) -> vec2<f32> {\n${
      g.lines.join("\n")
    }\n  return vec2<f32>(${r.v}, ${r.d});\n}`;
    // The value-only version: the same SSA lines, dead derivative lines dropped by the compiler.
    score = `${scoreGrad}\n\nfn score_mod(s: f32, ${COORDS}, head: i32) -> f32 {
  return score_mod_grad(s, qc, qp, kc, kp, head).x;
}`;
    for (const h of g.helpers) e.helpers.add(h);
  }
  const order = Object.keys(HELPERS) as Helper[];
  return {
    helpers: order.filter((h) => e.helpers.has(h)).map((h) => HELPERS[h]).join("\n\n"),
    mask,
    score,
    scoreGrad,
    hasScore: spec.score !== undefined,
    usesTables: e.helpers.has("seg_index"),
  };
}
