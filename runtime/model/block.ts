/**
 * One pre-norm transformer block of docs/DESIGN.md 1.3, its forward written once for training and
 * decoding and its backward beside it, op for op in reverse:
 *
 *   n1 = rmsnorm(x); q, k, v = n1 · Wqᵀ, Wkᵀ, Wvᵀ; att = attention(q, k, v) (RoPE inside);
 *   x2 = x + att · Woᵀ; n2 = rmsnorm(x2); act = silu(n2 · Wgᵀ) * (n2 · Wuᵀ);
 *   out = x2 + act · Wdᵀ
 *
 * Only the attention step differs between the users, so it is the caller's: the training graph
 * (runtime/model/graph.ts) rotates into head-major buffers and runs FlashAttention forward and
 * backward; the decoder (runtime/infer/cached_attention.ts) writes the keys into the KV cache and
 * runs the coordinate kernel against it. Rows are tokens (R below), in whatever order the caller
 * stores them: everything here is per row. Browser-safe.
 */
import type { Dispatch, KernelContext } from "../gpu/kernel.ts";
import {
  matmul,
  type MatmulChooser,
  type MatmulShape,
  type MatmulTrans,
} from "../kernels/matmul.ts";
import { rmsnormBackward, rmsnormForward } from "../kernels/rmsnorm.ts";
import { swigluBackward, swigluForward } from "../kernels/swiglu.ts";
import { headDim, type ModelParams } from "./params.ts";
import { copyOp, type Op } from "./ops.ts";

/**
 * A matmul of the model, blocked by its chooser: c (M, N) = op(a) · op(b) + beta · c, where
 * `inner` is the reduction length and `trans` says which operand is read transposed. `what`
 * names the product (`q_proj`, `d q input` for its input gradient, `d q_proj` for its weight
 * gradient): the autotuner's report lists the shapes a step records by these names.
 */
export type ModelMatmul = (
  what: string,
  trans: MatmulTrans,
  a: GPUBuffer,
  b: GPUBuffer,
  c: GPUBuffer,
  M: number,
  N: number,
  inner: number,
  beta?: number,
) => Dispatch;

/**
 * The model's matmuls with `choose`'s blocking per product (undefined: the kernel default);
 * `onCall` hears each product's name and shape as it is recorded.
 */
export function modelMatmul(
  ctx: KernelContext,
  choose?: MatmulChooser,
  onCall?: (what: string, shape: MatmulShape) => void,
): ModelMatmul {
  return (what, trans, a, b, c, M, N, inner, beta = 0) => {
    const shape = { trans, M, N, inner };
    onCall?.(what, shape);
    return matmul(ctx, { a, b, c, ...shape, beta, params: choose?.(shape) });
  };
}

/** What a block records with: the device, the parameters and the model's matmul. */
export interface BlockModel {
  ctx: KernelContext;
  params: ModelParams;
  mm: ModelMatmul;
}

/**
 * The activations of one block over R rows. Buffers may alias where nothing reads the earlier
 * value again: decoding keeps one residual stream (`x`, `x2` and `out` the same buffer, updated in
 * place) and one norm output; training keeps them all for the backward pass.
 */
export interface BlockActs {
  /** Block input (R, C): the residual stream. */
  x: GPUBuffer;
  /** rmsnorm(x) (R, C) and its per-row 1/rms (R). */
  n1: GPUBuffer;
  rstd1: GPUBuffer;
  /** Token-major projections before RoPE: q (R, H·d), k and v (R, HKV·d). */
  q: GPUBuffer;
  k: GPUBuffer;
  v: GPUBuffer;
  /** Attention output, token-major (R, H·d). */
  att: GPUBuffer;
  /** Residual after attention (R, C). */
  x2: GPUBuffer;
  /** rmsnorm(x2) (R, C) and its per-row 1/rms (R). */
  n2: GPUBuffer;
  rstd2: GPUBuffer;
  /** MLP (R, I): the two projections and silu(gate) * up. */
  gate: GPUBuffer;
  up: GPUBuffer;
  act: GPUBuffer;
  /** Block output (R, C): the next block's input. */
  out: GPUBuffer;
}

/**
 * The attention step of layer `layer`: reads `acts.q`, `acts.k`, `acts.v` (token-major, before
 * RoPE) and writes `acts.att` (token-major, H·d per row).
 */
export type AttentionStep<A extends BlockActs> = (layer: number, acts: A) => Op[];

/** The ops of block `layer` over `rows` rows, in order; `attention` supplies the attention. */
export function blockForward<A extends BlockActs>(
  m: BlockModel,
  o: { layer: number; rows: number; acts: A; attention: AttentionStep<A> },
): Op[] {
  const { ctx, params, mm } = m, cfg = params.config, a = o.acts, R = o.rows;
  const C = cfg.hidden_size, I = cfg.intermediate_size, d = headDim(cfg);
  const H = cfg.num_attention_heads, HKV = cfg.num_key_value_heads;
  const norm = { rows: R, cols: C, eps: cfg.rms_norm_eps };
  const w = (n: string) => params.get(`model.layers.${o.layer}.${n}.weight`);
  const ops: Op[] = [];
  // n1 (R, C) = rmsnorm(x)
  ops.push(rmsnormForward(ctx, { x: a.x, w: w("input_layernorm"), y: a.n1, rstd: a.rstd1 }, norm));
  // q (R, H·d), k and v (R, HKV·d) = n1 · Wᵀ
  ops.push(mm("q_proj", "nt", a.n1, w("self_attn.q_proj"), a.q, R, H * d, C));
  ops.push(mm("k_proj", "nt", a.n1, w("self_attn.k_proj"), a.k, R, HKV * d, C));
  ops.push(mm("v_proj", "nt", a.n1, w("self_attn.v_proj"), a.v, R, HKV * d, C));
  // att (R, H·d) = the spec's masked attention of RoPE(q) over RoPE(k), v
  ops.push(...o.attention(o.layer, a));
  // x2 (R, C) = x + att · Woᵀ
  if (a.x2 !== a.x) ops.push(copyOp(a.x, a.x2, R * C));
  ops.push(mm("o_proj", "nt", a.att, w("self_attn.o_proj"), a.x2, R, C, H * d, 1));
  // n2 (R, C) = rmsnorm(x2); act (R, I) = silu(n2 · Wgᵀ) * (n2 · Wuᵀ)
  ops.push(
    rmsnormForward(
      ctx,
      { x: a.x2, w: w("post_attention_layernorm"), y: a.n2, rstd: a.rstd2 },
      norm,
    ),
  );
  ops.push(mm("gate_proj", "nt", a.n2, w("mlp.gate_proj"), a.gate, R, I, C));
  ops.push(mm("up_proj", "nt", a.n2, w("mlp.up_proj"), a.up, R, I, C));
  ops.push(swigluForward(ctx, { gate: a.gate, up: a.up, out: a.act }, R * I));
  // out (R, C) = x2 + act · Wdᵀ
  if (a.out !== a.x2) ops.push(copyOp(a.x2, a.out, R * C));
  ops.push(mm("down_proj", "nt", a.act, w("mlp.down_proj"), a.out, R, C, I, 1));
  return ops;
}

/**
 * The gradient buffers a block's backward works in (R rows; scratch shared by every layer). `dx`
 * holds the residual stream's gradient: d out on entry, d x on return.
 */
export interface BlockGrads {
  dx: GPUBuffer;
  /** d act, d gate, d up (R, I). */
  dI: GPUBuffer;
  dGate: GPUBuffer;
  dUp: GPUBuffer;
  /** d n2, then d n1 (R, C). */
  dn: GPUBuffer;
  /** d att (R, H·d), token-major. */
  dAtt: GPUBuffer;
  /** d q (R, H·d), d k and d v (R, HKV·d), token-major, before RoPE. */
  dq: GPUBuffer;
  dk: GPUBuffer;
  dv: GPUBuffer;
  /** The weight gradient of a parameter, by its full name. */
  weight(name: string): GPUBuffer;
}

/**
 * The backward of the attention step of layer `layer`: reads `grads.dAtt` (and the forward's
 * saved activations) and writes `grads.dq`, `grads.dk`, `grads.dv`.
 */
export type AttentionBackward<A extends BlockActs> = (
  layer: number,
  acts: A,
  grads: BlockGrads,
) => Op[];

/**
 * The backward of block `layer` over `rows` rows: `blockForward` op for op in reverse, every
 * weight gradient written (input gradients of q/k/v, gate/up accumulate into `dn`) and `grads.dx`
 * turned from d out into d x.
 */
export function blockBackward<A extends BlockActs>(
  m: BlockModel,
  o: { layer: number; rows: number; acts: A; grads: BlockGrads; attention: AttentionBackward<A> },
): Op[] {
  const { ctx, params, mm } = m, cfg = params.config, a = o.acts, g = o.grads, R = o.rows;
  const C = cfg.hidden_size, I = cfg.intermediate_size, d = headDim(cfg);
  const H = cfg.num_attention_heads, HKV = cfg.num_key_value_heads;
  const norm = { rows: R, cols: C, eps: cfg.rms_norm_eps, accumulateDx: true };
  const name = (n: string) => `model.layers.${o.layer}.${n}.weight`;
  const w = (n: string) => params.get(name(n)), dw = (n: string) => g.weight(name(n));
  const ops: Op[] = [];
  // out = x2 + act·Wdᵀ: dact (R, I) = dx · Wd; dWd (C, I) = dxᵀ · act
  ops.push(mm("d down input", "nn", g.dx, w("mlp.down_proj"), g.dI, R, I, C));
  ops.push(mm("d down_proj", "tn", g.dx, a.act, dw("mlp.down_proj"), C, I, R));
  ops.push(
    swigluBackward(ctx, { dout: g.dI, gate: a.gate, up: a.up, dgate: g.dGate, dup: g.dUp }, R * I),
  );
  // dn2 (R, C) = dgate · Wg + dup · Wu; dWg, dWu (I, C)
  ops.push(mm("d gate input", "nn", g.dGate, w("mlp.gate_proj"), g.dn, R, C, I));
  ops.push(mm("d up input", "nn", g.dUp, w("mlp.up_proj"), g.dn, R, C, I, 1));
  ops.push(mm("d gate_proj", "tn", g.dGate, a.n2, dw("mlp.gate_proj"), I, C, R));
  ops.push(mm("d up_proj", "tn", g.dUp, a.n2, dw("mlp.up_proj"), I, C, R));
  // dx (R, C) += rmsnorm backward of n2: the residual stream now holds dx2
  ops.push(...rmsnormBackward(ctx, {
    dy: g.dn,
    x: a.x2,
    w: w("post_attention_layernorm"),
    rstd: a.rstd2,
    dx: g.dx,
    dw: dw("post_attention_layernorm"),
  }, norm));
  // x2 = x + att·Woᵀ: datt (R, H·d) = dx2 · Wo; dWo (C, H·d) = dx2ᵀ · att
  ops.push(mm("d o input", "nn", g.dx, w("self_attn.o_proj"), g.dAtt, R, H * d, C));
  ops.push(mm("d o_proj", "tn", g.dx, a.att, dw("self_attn.o_proj"), C, H * d, R));
  // dq (R, H·d), dk and dv (R, HKV·d) = the attention step's backward of datt
  ops.push(...o.attention(o.layer, a, g));
  // dn1 (R, C) = dq·Wq + dk·Wk + dv·Wv; dWq (H·d, C), dWk and dWv (HKV·d, C)
  ops.push(mm("d q input", "nn", g.dq, w("self_attn.q_proj"), g.dn, R, C, H * d));
  ops.push(mm("d k input", "nn", g.dk, w("self_attn.k_proj"), g.dn, R, C, HKV * d, 1));
  ops.push(mm("d v input", "nn", g.dv, w("self_attn.v_proj"), g.dn, R, C, HKV * d, 1));
  ops.push(mm("d q_proj", "tn", g.dq, a.n1, dw("self_attn.q_proj"), H * d, C, R));
  ops.push(mm("d k_proj", "tn", g.dk, a.n1, dw("self_attn.k_proj"), HKV * d, C, R));
  ops.push(mm("d v_proj", "tn", g.dv, a.n1, dw("self_attn.v_proj"), HKV * d, C, R));
  // dx (R, C) += rmsnorm backward of n1: the residual stream now holds dx
  ops.push(...rmsnormBackward(ctx, {
    dy: g.dn,
    x: a.x,
    w: w("input_layernorm"),
    rstd: a.rstd1,
    dx: g.dx,
    dw: dw("input_layernorm"),
  }, norm));
  return ops;
}
