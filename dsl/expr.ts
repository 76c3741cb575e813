/**
 * The expression language of attention specs: a small typed AST (plain JSON data, so it can be
 * stored in manifests and checkpoints) and the fluent builders users write masks and score
 * modifiers with. Integers are exact (floor division and floor modulo, like Python); booleans
 * combine comparisons; floats appear only in score modifiers.
 */

/** A coordinate of a token of the expanded sequence: its copy `c` or its position `p`. */
export type Field = "copy" | "pos";
/** The query side (`q`) or the key side (`k`) of a pair. */
export type Side = "q" | "k";

/** Integer expression nodes. `seg` is the index of the segment (document) holding a position. */
export type IntNode =
  | { op: "const"; value: number }
  | { op: "var"; side: Side; field: Field }
  | { op: "param"; name: string }
  | { op: "add" | "sub" | "mul" | "div" | "mod" | "min" | "max"; a: IntNode; b: IntNode }
  | { op: "seg"; of: IntNode; name: string };

/** Comparison operators. */
export type CmpOp = "eq" | "ne" | "lt" | "le" | "gt" | "ge";

/** Boolean expression nodes. */
export type BoolNode =
  | { op: "lit"; value: boolean }
  | { op: "cmp"; cmp: CmpOp; a: IntNode; b: IntNode }
  | { op: "and" | "or"; args: BoolNode[] }
  | { op: "not"; a: BoolNode };

/** Float expression nodes of score modifiers; `score` is the scaled q.k logit, `head` the head. */
export type FloatNode =
  | { op: "fconst"; value: number }
  | { op: "score" }
  | { op: "head" }
  | { op: "int"; a: IntNode }
  | { op: "fadd" | "fsub" | "fmul" | "fdiv"; a: FloatNode; b: FloatNode }
  | { op: "tanh" | "neg" | "exp2"; a: FloatNode }
  | { op: "select"; cond: BoolNode; a: FloatNode; b: FloatNode };

/** What an integer argument may be: an expression or a whole number. */
export type IntLike = IntExpr | number;
/** What a float argument may be: an expression or a number. */
export type FloatLike = FloatExpr | IntExpr | number;

function intNode(x: IntLike): IntNode {
  if (x instanceof IntExpr) return x.node;
  if (!Number.isInteger(x)) {
    throw new TypeError(`expected an integer or an IntExpr in a mask expression, got ${x}`);
  }
  return { op: "const", value: x };
}

function floatNode(x: FloatLike): FloatNode {
  if (x instanceof FloatExpr) return x.node;
  if (x instanceof IntExpr) return { op: "int", a: x.node };
  if (!Number.isFinite(x)) throw new TypeError(`expected a finite number, got ${x}`);
  return { op: "fconst", value: x };
}

/** An integer-valued expression. Division and modulo are floor division and floor modulo. */
export class IntExpr {
  /** Wraps an integer node; users build expressions from `MaskContext` instead. */
  constructor(readonly node: IntNode) {}
  /** `this + b`. */
  add(b: IntLike): IntExpr {
    return bin("add", this, b);
  }
  /** `this - b`. */
  sub(b: IntLike): IntExpr {
    return bin("sub", this, b);
  }
  /** `this * b`. */
  mul(b: IntLike): IntExpr {
    return bin("mul", this, b);
  }
  /** Floor division (rounds towards minus infinity); the divisor must be positive. */
  div(b: IntLike): IntExpr {
    return bin("div", this, b);
  }
  /** Floor modulo (the result has the divisor's sign); the divisor must be positive. */
  mod(b: IntLike): IntExpr {
    return bin("mod", this, b);
  }
  /** The smaller of `this` and `b`. */
  min(b: IntLike): IntExpr {
    return bin("min", this, b);
  }
  /** The larger of `this` and `b`. */
  max(b: IntLike): IntExpr {
    return bin("max", this, b);
  }
  /** `this == b`. */
  eq(b: IntLike): BoolExpr {
    return cmp("eq", this, b);
  }
  /** `this != b`. */
  ne(b: IntLike): BoolExpr {
    return cmp("ne", this, b);
  }
  /** `this < b`. */
  lt(b: IntLike): BoolExpr {
    return cmp("lt", this, b);
  }
  /** `this <= b`. */
  le(b: IntLike): BoolExpr {
    return cmp("le", this, b);
  }
  /** `this > b`. */
  gt(b: IntLike): BoolExpr {
    return cmp("gt", this, b);
  }
  /** `this >= b`. */
  ge(b: IntLike): BoolExpr {
    return cmp("ge", this, b);
  }
  /** The expression as readable infix text. */
  toString(): string {
    return formatInt(this.node);
  }
}

function bin(op: "add" | "sub" | "mul" | "div" | "mod" | "min" | "max", a: IntExpr, b: IntLike) {
  return new IntExpr({ op, a: a.node, b: intNode(b) });
}

function cmp(c: CmpOp, a: IntExpr, b: IntLike): BoolExpr {
  return new BoolExpr({ op: "cmp", cmp: c, a: a.node, b: intNode(b) });
}

/** A boolean expression: the mask predicate and its parts. */
export class BoolExpr {
  /** Wraps a boolean node; users build conditions by comparing `IntExpr`s instead. */
  constructor(readonly node: BoolNode) {}
  /** True when `this` and every one of `others` are. */
  and(...others: BoolExpr[]): BoolExpr {
    return and(this, ...others);
  }
  /** True when `this` or any one of `others` is. */
  or(...others: BoolExpr[]): BoolExpr {
    return or(this, ...others);
  }
  /** The negation of `this`. */
  not(): BoolExpr {
    return not(this);
  }
  /** The condition as readable infix text. */
  toString(): string {
    return formatBool(this.node);
  }
}

/** A float expression of a score modifier. */
export class FloatExpr {
  /** Wraps a float node; users start from `ScoreContext.score` or `head` instead. */
  constructor(readonly node: FloatNode) {}
  /** `this + b`. */
  add(b: FloatLike): FloatExpr {
    return new FloatExpr({ op: "fadd", a: this.node, b: floatNode(b) });
  }
  /** `this - b`. */
  sub(b: FloatLike): FloatExpr {
    return new FloatExpr({ op: "fsub", a: this.node, b: floatNode(b) });
  }
  /** `this * b`. */
  mul(b: FloatLike): FloatExpr {
    return new FloatExpr({ op: "fmul", a: this.node, b: floatNode(b) });
  }
  /** `this / b` (float division). */
  div(b: FloatLike): FloatExpr {
    return new FloatExpr({ op: "fdiv", a: this.node, b: floatNode(b) });
  }
  /** The expression as readable infix text. */
  toString(): string {
    return formatFloat(this.node);
  }
}

/** Conjunction of any number of conditions (true when empty). */
export function and(...xs: BoolExpr[]): BoolExpr {
  return new BoolExpr({ op: "and", args: xs.map((x) => x.node) });
}
/** Disjunction of any number of conditions (false when empty). */
export function or(...xs: BoolExpr[]): BoolExpr {
  return new BoolExpr({ op: "or", args: xs.map((x) => x.node) });
}
/** Negation. */
export function not(x: BoolExpr): BoolExpr {
  return new BoolExpr({ op: "not", a: x.node });
}
/** A constant condition. */
export function lit(value: boolean): BoolExpr {
  return new BoolExpr({ op: "lit", value });
}
/** An integer constant. */
export function int(value: number): IntExpr {
  return new IntExpr(intNode(value));
}
/** `cap * tanh(x / cap)`: Gemma-style logit soft-capping. */
export function softcap(x: FloatExpr, cap: number): FloatExpr {
  if (!(cap > 0)) throw new RangeError(`softcap needs a positive cap, got ${cap}`);
  return new FloatExpr({ op: "tanh", a: x.div(cap).node }).mul(cap);
}
/** `cond ? a : b` on floats. */
export function select(cond: BoolExpr, a: FloatLike, b: FloatLike): FloatExpr {
  return new FloatExpr({ op: "select", cond: cond.node, a: floatNode(a), b: floatNode(b) });
}
/** `2^x`, as used by ALiBi slopes. */
export function exp2(x: FloatLike): FloatExpr {
  return new FloatExpr({ op: "exp2", a: floatNode(x) });
}
/** Converts an integer expression to a float expression. */
export function toFloat(x: IntLike): FloatExpr {
  return new FloatExpr({ op: "int", a: intNode(x) });
}

const INT_SYMBOL = { add: "+", sub: "-", mul: "*", div: "//", mod: "%" } as const;
const CMP_SYMBOL = { eq: "==", ne: "!=", lt: "<", le: "<=", gt: ">", ge: ">=" } as const;

/** Formats an integer expression in a compact infix syntax (for names, errors and manifests). */
export function formatInt(n: IntNode): string {
  switch (n.op) {
    case "const":
      return String(n.value);
    case "var":
      return `${n.side}.${n.field}`;
    case "param":
      return n.name;
    case "seg":
      return `seg(${formatInt(n.of)}, ${n.name})`;
    case "min":
    case "max":
      return `${n.op}(${formatInt(n.a)}, ${formatInt(n.b)})`;
    default:
      return `(${formatInt(n.a)} ${INT_SYMBOL[n.op]} ${formatInt(n.b)})`;
  }
}

/** Formats a boolean expression. */
export function formatBool(n: BoolNode): string {
  switch (n.op) {
    case "lit":
      return String(n.value);
    case "cmp":
      return `${formatInt(n.a)} ${CMP_SYMBOL[n.cmp]} ${formatInt(n.b)}`;
    case "not":
      return `!(${formatBool(n.a)})`;
    default:
      if (n.args.length === 0) return n.op === "and" ? "true" : "false";
      return `(${n.args.map(formatBool).join(n.op === "and" ? " && " : " || ")})`;
  }
}

/** Formats a float expression. */
export function formatFloat(n: FloatNode): string {
  switch (n.op) {
    case "fconst":
      return String(n.value);
    case "score":
    case "head":
      return n.op;
    case "int":
      return `f32(${formatInt(n.a)})`;
    case "tanh":
    case "exp2":
      return `${n.op}(${formatFloat(n.a)})`;
    case "neg":
      return `-(${formatFloat(n.a)})`;
    case "select":
      return `(${formatBool(n.cond)} ? ${formatFloat(n.a)} : ${formatFloat(n.b)})`;
    default: {
      const s = { fadd: "+", fsub: "-", fmul: "*", fdiv: "/" }[n.op];
      return `(${formatFloat(n.a)} ${s} ${formatFloat(n.b)})`;
    }
  }
}

/** Names of the runtime parameters an expression reads (scalars and segment tables). */
export function paramsOf(n: IntNode | BoolNode | FloatNode, into = new Set<string>()): Set<string> {
  switch (n.op) {
    case "param":
      into.add(n.name);
      break;
    case "seg":
      into.add(n.name);
      paramsOf(n.of, into);
      break;
    case "cmp":
    case "add":
    case "sub":
    case "mul":
    case "div":
    case "mod":
    case "min":
    case "max":
    case "fadd":
    case "fsub":
    case "fmul":
    case "fdiv":
      paramsOf(n.a, into);
      paramsOf(n.b, into);
      break;
    case "and":
    case "or":
      for (const a of n.args) paramsOf(a, into);
      break;
    case "not":
    case "int":
    case "tanh":
    case "neg":
    case "exp2":
      paramsOf(n.a, into);
      break;
    case "select":
      paramsOf(n.cond, into);
      paramsOf(n.a, into);
      paramsOf(n.b, into);
      break;
  }
  return into;
}
