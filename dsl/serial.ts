/**
 * The serialised form of a spec: plain JSON (its expression trees, score modifier, parameters,
 * tables, K, position scheme, bidirectionality, name and description) that checkpoints, manifests
 * and the browser store, and the checked way back. `specFromJson` validates every node and rebuilds
 * the spec through `defineAttention`, so a rebuilt spec passes the same checks as a declared one;
 * anything malformed is one error line naming the path of the bad node.
 */
import {
  BoolExpr,
  type BoolNode,
  type CmpOp,
  FloatExpr,
  type FloatNode,
  type IntNode,
} from "./expr.ts";
import { type AttentionSpec, defineAttention } from "./spec.ts";

/** Format mark of the serialised form (bumped when the node language changes incompatibly). */
export const SPEC_FORMAT = "phd-attention-spec-1";

/** A spec as JSON data. */
export interface SpecJson {
  /** Always `SPEC_FORMAT`. */
  format: typeof SPEC_FORMAT;
  /** Base name (the full name is rebuilt with the parameters). */
  name: string;
  /** Copies per position. */
  K: number;
  /** Runtime integer parameters with their values. */
  params: Record<string, number>;
  /** Runtime segment tables with their values. */
  tables: Record<string, number[]>;
  /** The mask predicate's expression tree. */
  mask: BoolNode;
  /** The score modifier's expression tree, if the spec has one. */
  score?: FloatNode;
  /** Position-id scheme. */
  positions: AttentionSpec["positions"];
  /** Permitted non-causality. */
  bidirectional: AttentionSpec["bidirectional"];
  /** One line saying what the pattern is (may be empty). */
  description: string;
}

/** The serialised form of a spec (JSON-safe: `JSON.stringify` it as it is). */
export function specToJson(spec: AttentionSpec): SpecJson {
  return {
    format: SPEC_FORMAT,
    name: spec.baseName,
    K: spec.K,
    params: { ...spec.params },
    tables: Object.fromEntries(Object.entries(spec.tables).map(([k, v]) => [k, [...v]])),
    mask: spec.mask,
    ...(spec.score ? { score: spec.score } : {}),
    positions: spec.positions,
    bidirectional: spec.bidirectional,
    description: spec.description,
  };
}

const INT_BIN = new Set(["add", "sub", "mul", "div", "mod", "min", "max"]);
const CMP = new Set<CmpOp>(["eq", "ne", "lt", "le", "gt", "ge"]);
const FLOAT_BIN = new Set(["fadd", "fsub", "fmul", "fdiv"]);
const FLOAT_UN = new Set(["tanh", "neg", "exp2"]);

class Bad extends Error {}

function obj(x: unknown, at: string): Record<string, unknown> {
  if (typeof x !== "object" || x === null || Array.isArray(x)) {
    throw new Bad(`${at} must be an object, got ${JSON.stringify(x)}`);
  }
  return x as Record<string, unknown>;
}

function intNode(x: unknown, at: string): IntNode {
  const n = obj(x, at);
  if (n.op === "const") {
    if (!Number.isSafeInteger(n.value)) throw new Bad(`${at}.value must be an integer`);
    return { op: "const", value: n.value as number };
  }
  if (n.op === "var") {
    if (n.side !== "q" && n.side !== "k") throw new Bad(`${at}.side must be "q" or "k"`);
    if (n.field !== "copy" && n.field !== "pos") throw new Bad(`${at}.field must be copy or pos`);
    return { op: "var", side: n.side, field: n.field };
  }
  if (n.op === "param") {
    if (typeof n.name !== "string") throw new Bad(`${at}.name must be a string`);
    return { op: "param", name: n.name };
  }
  if (n.op === "seg") {
    if (typeof n.name !== "string") throw new Bad(`${at}.name must be a string`);
    return { op: "seg", name: n.name, of: intNode(n.of, `${at}.of`) };
  }
  if (typeof n.op === "string" && INT_BIN.has(n.op)) {
    return {
      op: n.op as "add",
      a: intNode(n.a, `${at}.a`),
      b: intNode(n.b, `${at}.b`),
    };
  }
  throw new Bad(`${at} has an unknown integer op ${JSON.stringify(n.op)}`);
}

function boolNode(x: unknown, at: string): BoolNode {
  const n = obj(x, at);
  switch (n.op) {
    case "lit":
      if (typeof n.value !== "boolean") throw new Bad(`${at}.value must be a boolean`);
      return { op: "lit", value: n.value };
    case "cmp":
      if (!CMP.has(n.cmp as CmpOp)) throw new Bad(`${at}.cmp must be one of ${[...CMP]}`);
      return {
        op: "cmp",
        cmp: n.cmp as CmpOp,
        a: intNode(n.a, `${at}.a`),
        b: intNode(n.b, `${at}.b`),
      };
    case "and":
    case "or":
      if (!Array.isArray(n.args)) throw new Bad(`${at}.args must be an array`);
      return { op: n.op, args: n.args.map((a, i) => boolNode(a, `${at}.args[${i}]`)) };
    case "not":
      return { op: "not", a: boolNode(n.a, `${at}.a`) };
  }
  throw new Bad(`${at} has an unknown boolean op ${JSON.stringify(n.op)}`);
}

function floatNode(x: unknown, at: string): FloatNode {
  const n = obj(x, at);
  if (n.op === "fconst") {
    if (typeof n.value !== "number" || !Number.isFinite(n.value)) {
      throw new Bad(`${at}.value must be a finite number`);
    }
    return { op: "fconst", value: n.value };
  }
  if (n.op === "score" || n.op === "head") return { op: n.op };
  if (n.op === "int") return { op: "int", a: intNode(n.a, `${at}.a`) };
  if (n.op === "select") {
    return {
      op: "select",
      cond: boolNode(n.cond, `${at}.cond`),
      a: floatNode(n.a, `${at}.a`),
      b: floatNode(n.b, `${at}.b`),
    };
  }
  if (typeof n.op === "string" && FLOAT_UN.has(n.op)) {
    return { op: n.op as "tanh", a: floatNode(n.a, `${at}.a`) };
  }
  if (typeof n.op === "string" && FLOAT_BIN.has(n.op)) {
    return { op: n.op as "fadd", a: floatNode(n.a, `${at}.a`), b: floatNode(n.b, `${at}.b`) };
  }
  throw new Bad(`${at} has an unknown float op ${JSON.stringify(n.op)}`);
}

function numbers(x: unknown, at: string): Record<string, number> {
  const o = obj(x, at);
  for (const [k, v] of Object.entries(o)) {
    if (typeof v !== "number") throw new Bad(`${at}.${k} must be a number`);
  }
  return o as Record<string, number>;
}

function tables(x: unknown, at: string): Record<string, number[]> {
  const o = obj(x, at);
  for (const [k, v] of Object.entries(o)) {
    if (!Array.isArray(v) || v.some((e) => typeof e !== "number")) {
      throw new Bad(`${at}.${k} must be an array of numbers`);
    }
  }
  return o as Record<string, number[]>;
}

/**
 * Rebuilds a spec from its serialised form (an object or its JSON text). Throws one line naming
 * the bad field when `x` is not one. The rebuilt spec fixes K (its expressions were expanded for
 * it): `respec` may change its parameters and tables, and refuses another K.
 */
export function specFromJson(x: unknown): AttentionSpec {
  try {
    const o = obj(typeof x === "string" ? JSON.parse(x) : x, "spec");
    if (o.format !== SPEC_FORMAT) {
      throw new Bad(`spec.format must be "${SPEC_FORMAT}", got ${JSON.stringify(o.format)}`);
    }
    if (typeof o.name !== "string") throw new Bad("spec.name must be a string");
    if (typeof o.K !== "number") throw new Bad("spec.K must be a number");
    const K = o.K, name = o.name;
    const mask = boolNode(o.mask, "spec.mask");
    const score = o.score === undefined ? undefined : floatNode(o.score, "spec.score");
    const b = o.bidirectional;
    if (b !== true && b !== false && b !== "copies") {
      throw new Bad(`spec.bidirectional must be true, false or "copies"`);
    }
    const fixedK = (ctxK: number) => {
      if (ctxK !== K) {
        throw new RangeError(
          `spec "${name}" was rebuilt from its serialised form for K = ${K} and cannot take ` +
            `K = ${ctxK}: load its source file to change K`,
        );
      }
    };
    return defineAttention({
      name,
      K,
      params: numbers(o.params ?? {}, "spec.params"),
      tables: tables(o.tables ?? {}, "spec.tables"),
      positions: o.positions as AttentionSpec["positions"],
      bidirectional: b,
      description: typeof o.description === "string" ? o.description : "",
      mask: (ctx) => {
        fixedK(ctx.K);
        return new BoolExpr(mask);
      },
      ...(score ? { score: () => new FloatExpr(score) } : {}),
    });
  } catch (e) {
    const msg = e instanceof Error ? e.message : String(e);
    throw new TypeError(`not a serialised attention spec: ${msg}`);
  }
}
