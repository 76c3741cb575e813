/**
 * Python code generation for PyTorch's FlexAttention (docs/DESIGN.md 3, `deno task export --to
 * flex`): a self-contained module with `mask_mod(b, h, q_idx, kv_idx)` and, when the spec has a
 * modifier, `score_mod(score, b, h, q_idx, kv_idx)`, over the flat token index of a storage layout
 * (compiler/layout.ts), plus `block_mask(L, device)` and `dense_mask(L)`. Platform-neutral: it
 * returns the source text. Integer semantics equal dsl/eval.ts (floor division and modulo, segment
 * = number of starts <= x minus one) using only tensor operators that FlexAttention traces: no
 * Python `if` on tensor values, constants folded here, runtime parameters and tables module-level
 * tensors (their values may change without re-exporting; a table's entry count may not).
 */
import type { BoolNode, FloatNode, IntNode } from "../../dsl/expr.ts";
import { type Bindings, floorDiv, floorMod, specBindings } from "../../dsl/eval.ts";
import type { AttentionSpec } from "../../dsl/spec.ts";
import type { Layout } from "../layout.ts";

/** A spec the target cannot express (the message says what and how to fix it). */
export class FlexExportError extends Error {}

/** Options of `flexModule`. */
export interface FlexOptions {
  /** Storage layout of the flat token index (`interleaved`: t = p*K + c). */
  layout: Layout;
  /** Positions the module-level `mask_mod` / `score_mod` are bound to (the grouped layout needs L). */
  L: number;
  /** Text for the docstring: the compiler's analysis of the spec (causality, retention, ...). */
  analysis: string;
  /** The command that made the module, quoted in the docstring. */
  command: string;
  /**
   * The `phd` metadata string a checkpoint trained with this mask carries (docs/DESIGN.md 4), or
   * undefined when checkpoints cannot name the mask (python/phd_torch then refuses to save).
   */
  checkpointPhd?: string;
}

/** A generated Python value: a folded constant, or the text of a tensor expression. */
type Value<T> = { const: T } | { expr: string };

const CMP = { eq: "==", ne: "!=", lt: "<", le: "<=", gt: ">", ge: ">=" } as const;
const CMP_FN = {
  eq: (a: number, b: number) => a === b,
  ne: (a: number, b: number) => a !== b,
  lt: (a: number, b: number) => a < b,
  le: (a: number, b: number) => a <= b,
  gt: (a: number, b: number) => a > b,
  ge: (a: number, b: number) => a >= b,
} as const;

function safe(v: number, what: string): number {
  if (!Number.isSafeInteger(v)) {
    throw new FlexExportError(
      `${what} ${v} is beyond 2^53: dsl/eval.ts computes in float64 and the export in int64, ` +
        `so they would disagree; use smaller constants`,
    );
  }
  return v;
}

function text<T>(v: Value<T>, lit: (c: T) => string): string {
  return "const" in v ? lit(v.const) : v.expr;
}

/** A Python float literal that reads back as the same float64. */
function floatLiteral(c: number): string {
  return Number.isInteger(c) && Math.abs(c) < 1e21 ? `${c}.0` : String(c);
}

const py = (n: number) => (n < 0 ? `(${n})` : String(n));

/** Emits the expressions of one spec; `bindings` give the parameter values divisors are checked at. */
class PyEmitter {
  constructor(readonly bindings: Bindings) {}

  int(n: IntNode): Value<number> {
    switch (n.op) {
      case "const":
        return { const: safe(n.value, "integer constant") };
      case "var":
        return { expr: `${n.side}${n.field === "copy" ? "c" : "p"}` };
      case "param":
        return { expr: `PARAMS[${JSON.stringify(n.name)}]` };
      case "seg": {
        // Number of starts <= x, minus one, unrolled over the table's entries: pointwise ops only.
        const x = text(this.int(n.of), py), len = this.bindings.tables[n.name].length;
        const table = `TABLES[${JSON.stringify(n.name)}]`;
        const terms = Array.from({ length: len }, (_, i) => `(${table}[${i}] <= ${x}).long()`);
        return { expr: `(${terms.join(" + ")} - 1)` };
      }
      case "add":
      case "sub":
      case "mul": {
        const a = this.int(n.a), b = this.int(n.b);
        if ("const" in a && "const" in b) {
          const f = { add: a.const + b.const, sub: a.const - b.const, mul: a.const * b.const };
          return { const: safe(f[n.op], "integer value") };
        }
        const o = { add: "+", sub: "-", mul: "*" }[n.op];
        return { expr: `(${text(a, py)} ${o} ${text(b, py)})` };
      }
      case "div":
      case "mod": {
        const a = this.int(n.a), b = this.int(n.b);
        this.#divisor(n.b, b);
        if ("const" in a && "const" in b) {
          return { const: (n.op === "div" ? floorDiv : floorMod)(a.const, b.const) };
        }
        // torch.div and torch.remainder need a tensor first operand.
        const x = "const" in a ? `torch.full_like(${text(b, py)}, ${a.const})` : a.expr;
        return n.op === "div"
          ? { expr: `torch.div(${x}, ${text(b, py)}, rounding_mode="floor")` }
          : { expr: `torch.remainder(${x}, ${text(b, py)})` };
      }
      case "min":
      case "max": {
        const a = this.int(n.a), b = this.int(n.b);
        if ("const" in a && "const" in b) return { const: Math[n.op](a.const, b.const) };
        if ("const" in a || "const" in b) {
          const [t, c] = "const" in a ? [b, a.const] : [a, (b as { const: number }).const];
          const bound = n.op === "min" ? "max" : "min";
          return { expr: `torch.clamp(${text(t, py)}, ${bound}=${c})` };
        }
        const f = n.op === "min" ? "minimum" : "maximum";
        return { expr: `torch.${f}(${a.expr}, ${b.expr})` };
      }
      default:
        throw new FlexExportError(`integer operator "${(n as { op: string }).op}" has no export`);
    }
  }

  /** Divisors must be positive (dsl/eval.ts refuses others); constants and parameters are checked. */
  #divisor(n: IntNode, v: Value<number>): void {
    const [what, value] = "const" in v
      ? [`the constant ${v.const}`, v.const]
      : n.op === "param"
      ? [`parameter ${n.name} = ${this.bindings.params[n.name]}`, this.bindings.params[n.name]]
      : ["", 1];
    if (value <= 0) {
      throw new FlexExportError(
        `the mask divides by ${what}: floor division needs a positive divisor; ` +
          `divide by a positive constant or give the parameter a positive value`,
      );
    }
  }

  bool(n: BoolNode): Value<boolean> {
    switch (n.op) {
      case "lit":
        return { const: n.value };
      case "cmp": {
        const a = this.int(n.a), b = this.int(n.b);
        if ("const" in a && "const" in b) return { const: CMP_FN[n.cmp](a.const, b.const) };
        return { expr: `(${text(a, py)} ${CMP[n.cmp]} ${text(b, py)})` };
      }
      case "not": {
        const a = this.bool(n.a);
        return "const" in a ? { const: !a.const } : { expr: `~${a.expr}` };
      }
      case "and":
      case "or": {
        const absorbing = n.op === "or";
        const parts: string[] = [];
        for (const arg of n.args) {
          const v = this.bool(arg);
          if ("const" in v) {
            if (v.const === absorbing) return { const: absorbing };
          } else parts.push(v.expr);
        }
        if (parts.length === 0) return { const: !absorbing };
        return parts.length === 1
          ? { expr: parts[0] }
          : { expr: `(${parts.join(n.op === "and" ? " & " : " | ")})` };
      }
      default:
        throw new FlexExportError(`boolean operator "${(n as { op: string }).op}" has no export`);
    }
  }

  /** Float constants are folded in float64 exactly as dsl/eval.ts `evalFloat` computes them. */
  float(n: FloatNode): Value<number> {
    const lit = floatLiteral;
    const num = (c: number): Value<number> => {
      if (!Number.isFinite(c)) {
        throw new FlexExportError(`the score modifier has the non-finite constant ${c}`);
      }
      return { const: c };
    };
    switch (n.op) {
      case "fconst":
        return num(n.value);
      case "score":
        return { expr: "score" };
      case "head":
        return { expr: "h.to(score.dtype)" };
      case "int": {
        const a = this.int(n.a);
        return "const" in a ? num(a.const) : { expr: `${a.expr}.to(score.dtype)` };
      }
      case "fadd":
      case "fsub":
      case "fmul":
      case "fdiv": {
        const a = this.float(n.a), b = this.float(n.b);
        if ("const" in a && "const" in b) {
          const x = a.const, y = b.const;
          return num({ fadd: x + y, fsub: x - y, fmul: x * y, fdiv: x / y }[n.op]);
        }
        const o = { fadd: "+", fsub: "-", fmul: "*", fdiv: "/" }[n.op];
        return { expr: `(${text(a, lit)} ${o} ${text(b, lit)})` };
      }
      case "tanh":
      case "exp2":
      case "neg": {
        const a = this.float(n.a);
        if ("const" in a) {
          const x = a.const;
          return num({ tanh: Math.tanh(x), exp2: Math.pow(2, x), neg: -x }[n.op]);
        }
        return { expr: n.op === "neg" ? `(-${a.expr})` : `torch.${n.op}(${a.expr})` };
      }
      case "select": {
        const c = this.bool(n.cond);
        if ("const" in c) return this.float(c.const ? n.a : n.b);
        const branch = (v: Value<number>) =>
          "const" in v ? `torch.full_like(score, ${lit(v.const)})` : v.expr;
        return {
          expr: `torch.where(${c.expr}, ${branch(this.float(n.a))}, ${branch(this.float(n.b))})`,
        };
      }
      default:
        throw new FlexExportError(`float operator "${(n as { op: string }).op}" has no export`);
    }
  }
}

/** The `token_coords` body of a layout: copy and position of flat indices, integer ops only. */
function coordsBody(layout: Layout, K: number): string[] {
  if (layout === "interleaved" || K === 1) {
    return [`    return torch.remainder(t, K), torch.div(t, K, rounding_mode="floor")`];
  }
  return [
    "    hidden = t >= L",
    "    j = torch.clamp(t - L, min=0)  # hidden index of a hidden token",
    `    c = torch.where(hidden, 1 + torch.remainder(j, K - 1), torch.zeros_like(t))`,
    `    p = torch.where(hidden, torch.div(j, K - 1, rounding_mode="floor"), t)`,
    "    return c, p",
  ];
}

function docLine(s: string): string {
  return s.replaceAll("\\", "\\\\").replaceAll('"""', '\\"\\"\\"');
}

/**
 * The Python module of a spec for FlexAttention. Throws `FlexExportError` (one line) when the
 * spec cannot be expressed: a non-positive divisor, a constant beyond 2^53, a non-finite float.
 */
export function flexModule(spec: AttentionSpec, o: FlexOptions): string {
  const bindings = specBindings(spec), e = new PyEmitter(bindings);
  const mask = e.bool(spec.mask);
  // A name of the generated code outside a string literal (parameter names are quoted).
  const reads = (expr: string, name: string) =>
    new RegExp(`(?<!["\\w])${name}(?!["\\w])`).test(expr);
  const m = "expr" in mask ? mask.expr : "";
  // FlexAttention's vmap and the dense grids both need a result of the broadcast (q, kv) shape.
  const maskExpr = "const" in mask
    ? `torch.full_like(qp + kp, ${mask.const ? "True" : "False"}, dtype=torch.bool)`
    : reads(m, "q[cp]") && reads(m, "k[cp]")
    ? m
    : `(${m} & torch.ones_like(qp + kp, dtype=torch.bool))`;
  let scoreExpr: string | undefined;
  if (spec.score) {
    const s = e.float(spec.score);
    scoreExpr = "const" in s
      ? `torch.full_like(score, ${floatLiteral(s.const)})`
      : reads(s.expr, "score(?!\\.dtype)")
      ? s.expr
      : `(torch.zeros_like(score) + ${s.expr})`;
  }
  const dict = (entries: string[]) =>
    `{${entries.map((x) => `\n    ${x},`).join("")}${entries.length ? "\n" : ""}}`;
  const params = Object.entries(spec.params).map(([k, v]) =>
    `${JSON.stringify(k)}: torch.tensor(${v}, dtype=torch.int64)`
  );
  const tables = Object.entries(spec.tables).map(([k, v]) =>
    `${JSON.stringify(k)}: torch.tensor([${v.join(", ")}], dtype=torch.int64)`
  );
  const index = o.layout === "interleaved" || spec.K === 1
    ? "t = p*K + c (interleaved, the canonical order)"
    : "[originals | hidden]: t = p for copy 0, L + p*(K-1) + c-1 for copy c >= 1 (grouped)";
  const doc = [
    `${spec.name}: FlexAttention mask_mod${
      spec.score ? " and score_mod" : ""
    } of an attention spec.`,
    "",
    `Generated by \`${o.command}\`; re-export rather than edit.`,
    `Flat token index over L positions of K = ${spec.K} copies: ${index}.`,
    `mask_mod and score_mod are bound to L = ${o.L} positions${
      o.layout === "grouped" && spec.K > 1 ? " (the grouped layout depends on L)" : ""
    };`,
    "mask_mod_for(L) and score_mod_for(L) serve other lengths. block_mask(L, device) builds the",
    "BlockMask (flex_attention needs torch >= 2.5); dense_mask(L) gives the boolean [K*L, K*L] mask",
    "on any torch by broadcasting index grids; move_to(device) moves PARAMS and TABLES.",
    "",
    "The compiler's analysis (docs/DESIGN.md 1.4):",
    ...o.analysis.split("\n"),
  ].map(docLine).join("\n");
  const lines = [
    `"""${doc}\n"""`,
    "import torch",
    "",
    `NAME = ${JSON.stringify(spec.name)}`,
    `K = ${spec.K}`,
    `LAYOUT = ${JSON.stringify(spec.K === 1 ? "interleaved" : o.layout)}`,
    `POSITIONS = ${JSON.stringify(spec.positions)}`,
    `SOURCE = ${JSON.stringify(spec.source)}`,
    `L = ${o.L}`,
    `# The __metadata__ "phd" string of a checkpoint trained with this mask (docs/DESIGN.md 4).`,
    `CHECKPOINT_PHD = ${o.checkpointPhd === undefined ? "None" : JSON.stringify(o.checkpointPhd)}`,
    "# Runtime parameters and segment tables (sorted starts): change the values freely, keep each",
    "# table's number of entries (the segment lookup is unrolled over them).",
    `PARAMS = ${dict(params)}`,
    `TABLES = ${dict(tables)}`,
    "",
    "",
    "def move_to(device):",
    '    """Moves the parameter and table tensors to a device (where the attention runs)."""',
    "    for table in (PARAMS, TABLES):",
    "        for name in table:",
    "            table[name] = table[name].to(device)",
    "",
    "",
    "def token_coords(t, L=L):",
    '    """(copy, pos) of the tokens at flat indices t of a sequence of L positions."""',
    "    t = t.to(torch.int64)",
    ...coordsBody(o.layout, spec.K),
    "",
    "",
    "def allowed(qc, qp, kc, kp):",
    '    """The mask over token coordinates: may query (qc, qp) attend key (kc, kp)?"""',
    `    return ${maskExpr}`,
    "",
    "",
    "def mask_mod_for(L):",
    '    """FlexAttention mask_mod over the flat index of a sequence of L positions."""',
    "",
    "    def mask_mod(b, h, q_idx, kv_idx):",
    "        qc, qp = token_coords(q_idx, L)",
    "        kc, kp = token_coords(kv_idx, L)",
    "        return allowed(qc, qp, kc, kp)",
    "",
    `    mask_mod.__name__ = ${JSON.stringify(spec.name)}`,
    "    return mask_mod",
    "",
    "",
    "mask_mod = mask_mod_for(L)",
    "",
    "",
  ];
  if (scoreExpr) {
    lines.push(
      "def score_mod_for(L):",
      '    """FlexAttention score_mod (score is the scaled logit, h the query head)."""',
      "",
      "    def score_mod(score, b, h, q_idx, kv_idx):",
      "        qc, qp = token_coords(q_idx, L)",
      "        kc, kp = token_coords(kv_idx, L)",
      `        return ${scoreExpr}`,
      "",
      `    score_mod.__name__ = ${JSON.stringify(`${spec.name}_score`)}`,
      "    return score_mod",
      "",
      "",
      "score_mod = score_mod_for(L)",
    );
  } else {
    lines.push("score_mod_for = None", "score_mod = None");
  }
  lines.push(
    "",
    "",
    "def dense_mask(L, device=None):",
    '    """The boolean [K*L, K*L] mask (rows queries, columns keys, storage order), any torch."""',
    "    t = torch.arange(K * L, device=device)",
    "    return mask_mod_for(L)(0, 0, t[:, None], t[None, :]).expand(K * L, K * L)",
    "",
    "",
    "def flex_available():",
    '    """True when the installed torch has FlexAttention (torch >= 2.5)."""',
    '    major, minor = (int("".join(ch for ch in x if ch.isdigit()) or 0) for x in torch.__version__.split(".")[:2])',
    "    if (major, minor) < (2, 5):",
    "        return False",
    "    try:",
    "        from torch.nn.attention import flex_attention  # noqa: F401",
    "    except ImportError:",
    "        return False",
    "    return True",
    "",
    "",
    "def block_mask(L, device):",
    '    """FlexAttention BlockMask of a sequence of L positions (B and H broadcast)."""',
    "    if not flex_available():",
    "        raise RuntimeError(",
    '            f"flex_attention needs torch >= 2.5; this torch is {torch.__version__}: "',
    '            "use dense_mask(L) on it, or install a newer torch"',
    "        )",
    "    from torch.nn.attention.flex_attention import create_block_mask",
    "",
    "    move_to(device)",
    "    return create_block_mask(mask_mod_for(L), None, None, K * L, K * L, device=device)",
    "",
  );
  return lines.join("\n");
}
