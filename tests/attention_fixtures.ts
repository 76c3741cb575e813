/**
 * Shared fixtures of the attention kernel tests: one device per test file, a seeded RNG, random
 * DSL masks, and the FlashAttention-style comparison (GPU error vs the float64 reference at most
 * 2x the naive float32 CPU error, plus a tiny floor).
 */
import { ok as assert } from "node:assert";
import { and, type BoolExpr, type IntExpr, not, or } from "../dsl/expr.ts";
import type { Bindings } from "../dsl/reference.ts";
import { type AttentionSpec, defineAttention, type MaskContext } from "../dsl/spec.ts";
import type { Layout } from "../compiler/layout.ts";
import { type GpuContext, requestGpu } from "../runtime/device.ts";
import { PipelineCache } from "../runtime/gpu.ts";
import { type AttentionConfig, FlashAttention } from "../runtime/attention.ts";
import { type AttentionProblem, referenceAttention } from "../runtime/reference_attention.ts";

let shared: Promise<{ gpu: GpuContext; cache: PipelineCache }> | undefined;

/** The device and pipeline cache shared by a test file. */
export function gpuOnce(): Promise<{ gpu: GpuContext; cache: PipelineCache }> {
  shared ??= requestGpu().then((gpu) => ({ gpu, cache: new PipelineCache(gpu.device) }));
  return shared;
}

/** Deterministic uniform [0, 1) generator (mulberry32). */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** `n` values uniform in [-1, 1). */
export function randomArray(r: () => number, n: number): Float32Array {
  return Float32Array.from({ length: n }, () => r() * 2 - 1);
}

/**
 * A random mask over copy/pos/hiddenIndex/chunk of both sides with small constants, floor
 * division/modulo (negative operands included) and and/or/not; rebuilt identically from the seed
 * whenever the spec is re-instantiated.
 */
export function randomMaskSpec(
  seed: number,
  K: number,
  o: { table?: boolean } = {},
): AttentionSpec {
  const build = (ctx: MaskContext): BoolExpr => {
    const r = rng(seed);
    const pick = <T>(xs: T[]): T => xs[Math.floor(r() * xs.length)];
    const small = () => Math.floor(r() * 9) - 3;
    const leaf = (): IntExpr => {
      const s = pick([ctx.q, ctx.k]);
      return pick<() => IntExpr>([
        () => s.copy,
        () => s.pos,
        () => s.hiddenIndex,
        () => s.chunk(ctx.p.C),
        () => s.chunk(1 + Math.floor(r() * 4)),
        () => o.table ? s.segment("docs") : s.pos,
      ])();
    };
    const int = (depth: number): IntExpr => {
      const a = leaf();
      if (depth === 0 || r() < 0.4) return a;
      return pick<() => IntExpr>([
        () => a.add(int(depth - 1)),
        () => a.sub(int(depth - 1)),
        () => a.mul(1 + Math.floor(r() * 3)),
        () => a.sub(int(depth - 1)).div(pick([ctx.p.W, ctx.p.C, 2, 3])),
        () => a.sub(int(depth - 1)).mod(pick([ctx.p.W, 2, 3])),
        () => a.min(int(depth - 1)),
        () => a.max(small()),
      ])();
    };
    const bool = (depth: number): BoolExpr => {
      if (depth === 0 || r() < 0.3) {
        const a = int(2), b = r() < 0.5 ? int(1) : small();
        return pick([a.lt(b), a.le(b), a.eq(b), a.ne(b), a.gt(b), a.ge(b)]);
      }
      const x = bool(depth - 1), y = bool(depth - 1);
      return pick([and(x, y), or(x, y), not(x), and(x, y.not())]);
    };
    // Mostly causal-ish so rows keep some keys, but fully masked rows stay possible.
    return r() < 0.5 ? and(ctx.k.pos.le(ctx.q.pos), bool(3)) : bool(3);
  };
  return defineAttention({
    name: `random_${seed}`,
    K,
    params: { W: 1 + (seed % 4), C: 2 + (seed % 3) },
    tables: o.table ? { docs: [0, 3, 4, 9] } : undefined,
    bidirectional: true,
    mask: build,
  });
}

/** Max |a - b| over indices where `b` is finite. */
export function maxAbsErr(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) {
    if (Number.isFinite(b[i])) m = Math.max(m, Math.abs(a[i] - b[i]));
    else if (!(a[i] <= -1e38)) return Infinity; // -inf LSE must come back as NEG_BIG
  }
  return m;
}

/** One kernel check: a spec, a shape and a kernel configuration. */
export interface KernelCase {
  spec: AttentionSpec;
  L: number;
  layout?: Layout;
  batch?: number;
  heads?: number;
  kvHeads?: number;
  headDim?: number;
  bindings?: Bindings;
  config?: Omit<AttentionConfig, "headDim" | "layout">;
  seed?: number;
  /** Also run the backward pass (default true). */
  backward?: boolean;
}

/** Absolute error floor: keeps exact (0-error) baselines from demanding bit equality. */
export const ERROR_FLOOR = 1e-6;

/**
 * Runs a case on the GPU and checks o, lse, dq, dk, dv against the float64 reference: GPU error
 * <= 2x the naive float32 error + ERROR_FLOOR. Returns the errors for reports.
 */
export async function checkCase(c: KernelCase): Promise<Record<string, [number, number]>> {
  const { gpu, cache } = await gpuOnce();
  const layout = c.layout ?? "interleaved", headDim = c.headDim ?? 32;
  const batch = c.batch ?? 1, heads = c.heads ?? 2, kvHeads = c.kvHeads ?? heads;
  const N = c.spec.K * c.L, r = rng(c.seed ?? 1);
  const x = {
    q: randomArray(r, batch * heads * N * headDim),
    k: randomArray(r, batch * kvHeads * N * headDim),
    v: randomArray(r, batch * kvHeads * N * headDim),
    dO: c.backward === false ? undefined : randomArray(r, batch * heads * N * headDim),
  };
  const fa = new FlashAttention(gpu, cache, c.spec, { headDim, layout, ...c.config });
  const got = await fa.run(x, { L: c.L, batch, heads, kvHeads, bindings: c.bindings });
  const p: AttentionProblem = {
    spec: c.spec,
    L: c.L,
    layout,
    batch,
    heads,
    kvHeads,
    headDim,
    bindings: c.bindings,
  };
  const ref = referenceAttention(p, x, "f64"), naive = referenceAttention(p, x, "f32");
  const errs: Record<string, [number, number]> = {};
  const what = `${c.spec.name} L=${c.L} ${layout} d=${headDim} B=${batch} H=${heads}/${kvHeads} ${
    JSON.stringify(c.config ?? {})
  }`;
  for (const k of ["o", "dq", "dk", "dv"] as const) {
    if (!ref[k]) continue;
    const e = maxAbsErr(got[k]!, ref[k]!), base = maxAbsErr(naive[k]!, ref[k]!);
    errs[k] = [e, base];
    assert(e <= 2 * base + ERROR_FLOOR, `${what}: ${k} error ${e} > 2 x ${base} + floor`);
  }
  const le = maxAbsErr(got.lse, ref.lse);
  errs.lse = [le, maxAbsErr(naive.lse, ref.lse)];
  assert(le <= 2 * errs.lse[1] + 1e-5, `${what}: lse error ${le}`);
  return errs;
}
