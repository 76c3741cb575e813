/**
 * Attention specs: `defineAttention` turns a user's declaration (K, runtime parameters, a mask
 * predicate over query/key token coordinates, an optional score modifier) into a checked,
 * serialisable `AttentionSpec` whose name carries its parameters (`phd_cswa_k3_w16_c32`).
 */
import {
  BoolExpr,
  type BoolNode,
  FloatExpr,
  type FloatNode,
  formatBool,
  formatFloat,
  IntExpr,
  type IntLike,
  paramsOf,
} from "./expr.ts";

/** The coordinates of one side (query or key) of an attention pair, as expressions. */
export interface TokenCoords {
  /** Copy index c in [0, K): 0 is the original token, c >= 1 a hidden decoding token. */
  readonly copy: IntExpr;
  /** Position p in [0, L) of the token in the input sequence. */
  readonly pos: IntExpr;
  /** True for hidden decoding tokens (copy >= 1). */
  readonly hidden: BoolExpr;
  /** True for original tokens (copy == 0). */
  readonly original: BoolExpr;
  /** Order of a hidden token among hidden tokens: `pos*(K-1) + copy-1` (docs/DESIGN.md 1.1). */
  readonly hiddenIndex: IntExpr;
  /** Chunk of the position: `floor(pos / C)`. */
  chunk(C: IntLike): IntExpr;
  /** Index of the segment (document) holding the position, from a runtime offset table. */
  segment(table: string): IntExpr;
}

/** What a mask builder receives. */
export interface MaskContext {
  /** The query token. */
  readonly q: TokenCoords;
  /** The key token. */
  readonly k: TokenCoords;
  /** Copies per position. */
  readonly K: number;
  /** Runtime scalar parameters, by name (they travel in uniforms: changing them never recompiles). */
  readonly p: Readonly<Record<string, IntExpr>>;
}

/** What a score-modifier builder receives: the mask context plus the logit and the head index. */
export interface ScoreContext extends MaskContext {
  /** The scaled logit `q.k / sqrt(d)`. */
  readonly score: FloatExpr;
  /** The attention head index, as a float. */
  readonly head: FloatExpr;
}

/** How position ids (for RoPE) are assigned to copies (docs/DESIGN.md 1.3). */
export type PositionScheme = "shared" | "flattened";

/**
 * Which attention "into the future" a spec permits. `false`: none (strictly causal in the
 * canonical interleaved order). `"copies"`: the copies of one position may see each other in any
 * order (harmless for decoding, which computes a position's K copies together). `true`: any.
 */
export type Bidirectional = boolean | "copies";

/** A user's declaration of an attention pattern. */
export interface AttentionSpecInput {
  /** Base name (snake_case); parameter values are appended to form the full name. */
  name: string;
  /** Copies per token (1 = vanilla). Default 1. */
  K?: number;
  /** Runtime integer parameters with their defaults, e.g. `{ W: 16, C: 32 }`. */
  params?: Record<string, number>;
  /** Runtime segment tables (sorted start offsets, e.g. documents), with their defaults. */
  tables?: Record<string, number[]>;
  /** The mask predicate: may query `q` attend key `k`? */
  mask: (ctx: MaskContext) => BoolExpr;
  /** Optional score modifier (soft-capping, additive bias): returns the new logit. */
  score?: (ctx: ScoreContext) => FloatExpr;
  /** Position-id scheme. Default `"shared"`. */
  positions?: PositionScheme;
  /** Permitted non-causality. Default `false`. */
  bidirectional?: Bidirectional;
  /** One line saying what the pattern is. */
  description?: string;
}

/** A checked spec: plain data plus the declaration it came from (to rebuild it for another K). */
export interface AttentionSpec {
  /** Tag that marks a spec (`isAttentionSpec`). */
  readonly kind: "attention-spec";
  /** Full name with parameters, e.g. `phd_cswa_k3_w16_c32`. */
  readonly name: string;
  /** The declared name, without parameters, e.g. `phd_cswa`. */
  readonly baseName: string;
  /** Copies per position (1 = vanilla), in [1, `MAX_K`]. */
  readonly K: number;
  /** Runtime integer parameters with their default values. */
  readonly params: Readonly<Record<string, number>>;
  /** Runtime segment tables (strictly increasing start offsets) with their defaults. */
  readonly tables: Readonly<Record<string, readonly number[]>>;
  /** The mask predicate's expression tree. */
  readonly mask: BoolNode;
  /** The score modifier's expression tree, if any. */
  readonly score?: FloatNode;
  /** Position-id scheme (default `"shared"`). */
  readonly positions: PositionScheme;
  /** Permitted non-causality (default `false`). */
  readonly bidirectional: Bidirectional;
  /** One line saying what the pattern is (empty if none was declared). */
  readonly description: string;
  /** The mask (and score) as readable infix text, stored in manifests and checkpoints. */
  readonly source: string;
  /** The declaration it was built from (`respec` rebuilds from it). */
  readonly input: AttentionSpecInput;
}

const IDENT = /^[A-Za-z_][A-Za-z0-9_]*$/;

function coords(side: "q" | "k", K: number): TokenCoords {
  const copy = new IntExpr({ op: "var", side, field: "copy" });
  const pos = new IntExpr({ op: "var", side, field: "pos" });
  return {
    copy,
    pos,
    hidden: copy.ge(1),
    original: copy.eq(0),
    hiddenIndex: pos.mul(K - 1).add(copy).sub(1),
    chunk: (C: IntLike) => pos.div(C),
    segment: (table: string) => new IntExpr({ op: "seg", of: pos.node, name: table }),
  };
}

/**
 * The most copies per position a spec may declare: the analyses and kernels are sized for it
 * (the tile classes of the fused kernels allow 30), and a larger K only makes work that never
 * ends.
 */
export const MAX_K = 256;

function checkInt(what: string, v: unknown, min: number, max = Number.MAX_SAFE_INTEGER): number {
  if (typeof v !== "number" || !Number.isInteger(v) || v < min || v > max) {
    const range = max === Number.MAX_SAFE_INTEGER ? `>= ${min}` : `in [${min}, ${max}]`;
    throw new RangeError(`${what} must be an integer ${range}, got ${v}`);
  }
  return v;
}

/** Builds and checks a spec. Throws a one-line error naming what is wrong and how to fix it. */
export function defineAttention(input: AttentionSpecInput): AttentionSpec {
  if (!IDENT.test(input.name)) {
    throw new TypeError(`spec name must be an identifier like "phd_cswa", got "${input.name}"`);
  }
  const K = checkInt(`K of spec "${input.name}"`, input.K ?? 1, 1, MAX_K);
  const params: Record<string, number> = {};
  for (const [k, v] of Object.entries(input.params ?? {})) {
    if (!IDENT.test(k)) throw new TypeError(`parameter name "${k}" is not an identifier`);
    params[k] = checkInt(`parameter ${k} of spec "${input.name}"`, v, 0);
  }
  const tables: Record<string, number[]> = {};
  for (const [k, v] of Object.entries(input.tables ?? {})) {
    if (!IDENT.test(k)) throw new TypeError(`table name "${k}" is not an identifier`);
    if (k in params) throw new TypeError(`"${k}" is both a parameter and a table`);
    tables[k] = checkTable(k, v);
  }
  const p: Record<string, IntExpr> = {};
  for (const k of Object.keys(params)) p[k] = new IntExpr({ op: "param", name: k });
  const ctx: MaskContext = { q: coords("q", K), k: coords("k", K), K, p };
  const maskExpr = input.mask(ctx);
  if (!(maskExpr instanceof BoolExpr)) {
    throw new TypeError(
      `mask of spec "${input.name}" must return a BoolExpr (use .lt(), and() ...)`,
    );
  }
  let score: FloatNode | undefined;
  if (input.score) {
    const s = input.score({
      ...ctx,
      score: new FloatExpr({ op: "score" }),
      head: new FloatExpr({ op: "head" }),
    });
    if (!(s instanceof FloatExpr)) {
      throw new TypeError(`score of spec "${input.name}" must return a FloatExpr`);
    }
    score = s.node;
  }
  const used = paramsOf(maskExpr.node);
  if (score) paramsOf(score, used);
  for (const name of used) {
    if (!(name in params) && !(name in tables)) {
      throw new ReferenceError(
        `spec "${input.name}" reads "${name}" but declares no parameter or table of that name`,
      );
    }
  }
  const positions = input.positions ?? "shared";
  if (positions !== "shared" && positions !== "flattened") {
    throw new TypeError(`positions must be "shared" or "flattened", got "${positions}"`);
  }
  const suffix = [`k${K}`, ...Object.entries(params).map(([k, v]) => `${k.toLowerCase()}${v}`)];
  const source = formatBool(maskExpr.node) + (score ? `; score = ${formatFloat(score)}` : "");
  return {
    kind: "attention-spec",
    name: [input.name, ...suffix].join("_"),
    baseName: input.name,
    K,
    params,
    tables,
    mask: maskExpr.node,
    score,
    positions,
    bidirectional: input.bidirectional ?? false,
    description: input.description ?? "",
    source,
    input,
  };
}

function checkTable(name: string, v: unknown): number[] {
  if (!Array.isArray(v) || v.length === 0) {
    throw new TypeError(`table ${name} must be a non-empty array of start offsets`);
  }
  v.forEach((x, i) => {
    checkInt(`table ${name}[${i}]`, x, 0);
    if (i > 0 && x <= v[i - 1]) throw new RangeError(`table ${name} must be strictly increasing`);
  });
  return [...v];
}

/** Overrides applied when re-instantiating a spec (CLI flags, tuning sweeps). */
export interface SpecOverrides {
  /** Copies per position. Default: the spec's. */
  K?: number;
  /** Parameter values, merged over the spec's; each must be a parameter it declares. */
  params?: Record<string, number>;
  /** Table values, merged over the spec's; each must be a table it declares. */
  tables?: Record<string, number[]>;
}

/** Rebuilds a spec with another K and/or other parameter values; unknown names are refused. */
export function respec(spec: AttentionSpec, o: SpecOverrides): AttentionSpec {
  for (const k of Object.keys(o.params ?? {})) {
    if (!(k in spec.params)) {
      const known = Object.keys(spec.params).join(", ") || "none";
      throw new RangeError(`spec "${spec.baseName}" has no parameter ${k} (it has: ${known})`);
    }
  }
  for (const k of Object.keys(o.tables ?? {})) {
    if (!(k in spec.tables)) throw new RangeError(`spec "${spec.baseName}" has no table ${k}`);
  }
  return defineAttention({
    ...spec.input,
    K: o.K ?? spec.K,
    params: { ...spec.params, ...o.params },
    tables: { ...spec.tables, ...o.tables } as Record<string, number[]>,
  });
}

/** True if `x` looks like a spec (for loading user files). */
export function isAttentionSpec(x: unknown): x is AttentionSpec {
  return typeof x === "object" && x !== null &&
    (x as { kind?: unknown }).kind === "attention-spec";
}

/**
 * The spec a loaded module provides: its default export, else its only exported spec. `where`
 * names the module in the one-line error thrown when it exports none, or several and no default.
 */
export function specOfModule(mod: Record<string, unknown>, where: string): AttentionSpec {
  if (isAttentionSpec(mod.default)) return mod.default;
  const specs = Object.entries(mod).filter(([, v]) => isAttentionSpec(v));
  if (specs.length === 1) return specs[0][1] as AttentionSpec;
  if (specs.length === 0) {
    throw new TypeError(
      `${where} exports no AttentionSpec: add \`export default defineAttention({...})\``,
    );
  }
  throw new TypeError(
    `${where} exports several specs (${specs.map(([k]) => k).join(", ")}) ` +
      `and none as default: export the one to use as default`,
  );
}
