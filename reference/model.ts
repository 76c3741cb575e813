/**
 * The whole PHD transformer of docs/DESIGN.md 1.3 in float64 on the CPU, forward loss and full
 * backward: the oracle the GPU trainer is tested against. Parameters are named Float64Arrays with
 * the Hugging Face Llama names and `[out, in]` shapes (runtime/model/params.ts builds the same). Tokens of the
 * expanded sequence are in the canonical interleaved order `t = p*K + c`; every copy of position p
 * reads embed(x_p) (with per-copy embeddings copy c reads its own table, rows `c*V ..` of the
 * stacked `model.embed_tokens.weight`; a tied head is copy 0's table); attention uses the spec's
 * mask (reference/attention.ts, via dsl/eval.ts evalBool); the loss is the cross-entropy of copy
 * K-1 at position p predicting x_{p+1}, averaged over positions and sequences. Readable over fast:
 * one layer per block.
 */
import type { AttentionSpec } from "../dsl/spec.ts";
import { type AttentionProblem, referenceAttention } from "./attention.ts";
import {
  crossEntropyRef,
  gatherRef,
  matmulRef,
  rmsnormBackwardRef,
  rmsnormRef,
  ropeRef,
  scatterAddRef,
  swigluBackwardRef,
  swigluRef,
  transposeHeads,
} from "./kernels.ts";

/**
 * The model's shapes and constants, as plain data (the fields of a Hugging Face Llama
 * `config.json`; runtime/model/config.ts `ModelConfig` is one). The oracle takes them as given
 * rather than importing the runtime it checks.
 */
export interface ReferenceShapes {
  vocab_size: number;
  hidden_size: number;
  intermediate_size: number;
  num_hidden_layers: number;
  num_attention_heads: number;
  num_key_value_heads: number;
  rope_theta: number;
  rms_norm_eps: number;
  tie_word_embeddings: boolean;
}

/** Named parameters in float64, Hugging Face Llama names and `[out, in]` shapes. */
export type Params = Record<string, Float64Array>;

/** Position id of each token of the expanded sequence (canonical order), per the spec's scheme. */
export function positionIds(spec: AttentionSpec, L: number): number[] {
  const K = spec.K;
  return Array.from(
    { length: K * L },
    (_, t) => spec.positions === "flattened" ? t : Math.floor(t / K),
  );
}

/** Result of `forwardBackward`. */
export interface ReferenceResult {
  /** Mean next-token loss in nats. */
  loss: number;
  /** Gradients of `loss` by parameter name (when asked for). */
  grads?: Params;
}

interface LayerCache {
  x: Float64Array;
  n1: Float64Array;
  rstd1: Float64Array;
  qh: Float64Array;
  kh: Float64Array;
  vh: Float64Array;
  att: Float64Array;
  x2: Float64Array;
  n2: Float64Array;
  rstd2: Float64Array;
  gate: Float64Array;
  up: Float64Array;
  act: Float64Array;
}

function add(a: Float64Array, b: ArrayLike<number>): Float64Array {
  const out = new Float64Array(a.length);
  for (let i = 0; i < a.length; i++) out[i] = a[i] + b[i];
  return out;
}

function addInto(a: Float64Array, b: ArrayLike<number>): void {
  for (let i = 0; i < a.length; i++) a[i] += b[i];
}

/**
 * Loss of `tokens` (B sequences of L+1 ids, row-major) and, with `grads`, its gradient for every
 * parameter. The spec gives K, the mask and the position scheme.
 */
export function forwardBackward(
  model: {
    config: ReferenceShapes;
    spec: AttentionSpec;
    params: Params;
    /** Default "shared". */
    embeddings?: "shared" | "per-copy";
  },
  o: {
    tokens: ArrayLike<number>;
    batch: number;
    grads?: boolean;
    /** The positions the loss scores (default all): the mean is over these predictions only. */
    lossPositions?: readonly number[];
  },
): ReferenceResult {
  const { config: cfg, spec, params: P } = model;
  const B = o.batch, L = o.tokens.length / B - 1, K = spec.K, N = K * L, R = B * N;
  if (!Number.isInteger(L) || L < 1) {
    throw new RangeError(
      `tokens must hold batch x (L+1) ids, got ${o.tokens.length} for batch ${B}`,
    );
  }
  const C = cfg.hidden_size, V = cfg.vocab_size, I = cfg.intermediate_size;
  const H = cfg.num_attention_heads,
    HKV = cfg.num_key_value_heads,
    d = cfg.hidden_size / cfg.num_attention_heads;
  const eps = cfg.rms_norm_eps, theta = cfg.rope_theta;
  const pos = positionIds(spec, L);
  const perCopy = model.embeddings === "per-copy", tables = perCopy ? K : 1;
  const embed = P["model.embed_tokens.weight"];
  if (embed.length !== tables * V * C) {
    throw new RangeError(`model.embed_tokens.weight must hold ${tables} x ${V} x ${C} values`);
  }
  const head = cfg.tie_word_embeddings ? embed.subarray(0, V * C) : P["lm_head.weight"];
  const W = (i: number, n: string) => P[`model.layers.${i}.${n}.weight`];
  const lin = (x: ArrayLike<number>, w: Float64Array, rows: number, out: number, inp: number) =>
    matmulRef(x, w, { M: rows, N: out, inner: inp, trans: "nt" });
  const heads = (n: number) => ({ batch: B, tokens: N, heads: n, headDim: d });
  const problem: AttentionProblem = {
    spec,
    L,
    layout: "interleaved",
    batch: B,
    heads: H,
    kvHeads: HKV,
    headDim: d,
  };

  // ids (B, N): every copy of position p reads x_p (per-copy: row x_p + c*V); targets: x_{p+1}
  // for the last copy.
  const scored = o.lossPositions ?? Array.from({ length: L }, (_, p) => p), S = scored.length;
  const ids = new Uint32Array(R), rows = new Uint32Array(B * S), targets = new Uint32Array(B * S);
  for (let b = 0; b < B; b++) {
    for (let p = 0; p < L; p++) {
      for (let c = 0; c < K; c++) {
        ids[b * N + p * K + c] = o.tokens[b * (L + 1) + p] + (perCopy ? c * V : 0);
      }
    }
    scored.forEach((p, i) => {
      rows[b * S + i] = b * N + p * K + K - 1;
      targets[b * S + i] = o.tokens[b * (L + 1) + p + 1];
    });
  }

  // forward: x is (R, C) throughout
  let x: Float64Array = gatherRef(embed, ids, C);
  const caches: LayerCache[] = [];
  for (let i = 0; i < cfg.num_hidden_layers; i++) {
    const { y: n1, rstd: rstd1 } = rmsnormRef(x, W(i, "input_layernorm"), { C, eps });
    const q = lin(n1, W(i, "self_attn.q_proj"), R, H * d, C);
    const k = lin(n1, W(i, "self_attn.k_proj"), R, HKV * d, C);
    const v = lin(n1, W(i, "self_attn.v_proj"), R, HKV * d, C);
    const qh = ropeRef(transposeHeads(q, heads(H)), pos, { headDim: d, theta });
    const kh = ropeRef(transposeHeads(k, heads(HKV)), pos, { headDim: d, theta });
    const vh = transposeHeads(v, heads(HKV));
    const oh = referenceAttention(problem, { q: qh, k: kh, v: vh }).o;
    const att = transposeHeads(oh, { ...heads(H), back: true });
    const x2 = add(x, lin(att, W(i, "self_attn.o_proj"), R, C, H * d));
    const { y: n2, rstd: rstd2 } = rmsnormRef(x2, W(i, "post_attention_layernorm"), { C, eps });
    const gate = lin(n2, W(i, "mlp.gate_proj"), R, I, C);
    const up = lin(n2, W(i, "mlp.up_proj"), R, I, C);
    const act = swigluRef({ gate, up });
    caches.push({ x, n1, rstd1, qh, kh, vh, att, x2, n2, rstd2, gate, up, act });
    x = add(x2, lin(act, W(i, "mlp.down_proj"), R, C, I));
  }
  const { y: nf, rstd: rstdf } = rmsnormRef(x, P["model.norm.weight"], { C, eps });
  const M = B * S, sel = gatherRef(nf, rows, C);
  const logits = lin(sel, head, M, V, C);
  const ident = Uint32Array.from({ length: M }, (_, j) => j);
  const ce = crossEntropyRef({ logits, rows: ident, targets }, { V, scale: 1 / M });
  const loss = ce.losses.reduce((a, b) => a + b, 0) / M;
  if (!o.grads) return { loss };

  // backward
  const G: Params = {};
  for (const [name, p] of Object.entries(P)) G[name] = new Float64Array(p.length);
  const dHead = matmulRef(ce.dlogits, sel, { M: V, N: C, inner: M, trans: "tn" });
  const gEmbed = G["model.embed_tokens.weight"];
  addInto(cfg.tie_word_embeddings ? gEmbed.subarray(0, V * C) : G["lm_head.weight"], dHead);
  const dsel = matmulRef(ce.dlogits, head, { M, N: C, inner: V, trans: "nn" });
  const dnf = scatterAddRef(dsel, rows, { V: R, C });
  const fb = rmsnormBackwardRef({ dy: dnf, x, w: P["model.norm.weight"], rstd: rstdf }, { C });
  addInto(G["model.norm.weight"], fb.dw);
  let dx: Float64Array = fb.dx;
  const gW = (i: number, n: string) => G[`model.layers.${i}.${n}.weight`];
  // dW (out, in) += dyᵀ·x; dx (rows, in) = dy·W
  const linBack = (dy: Float64Array, xin: Float64Array, w: Float64Array, g: Float64Array) => {
    const out = w.length / (xin.length / R), inp = xin.length / R;
    addInto(g, matmulRef(dy, xin, { M: out, N: inp, inner: R, trans: "tn" }));
    return matmulRef(dy, w, { M: R, N: inp, inner: out, trans: "nn" });
  };
  for (let i = cfg.num_hidden_layers - 1; i >= 0; i--) {
    const c = caches[i];
    // x = x2 + down(act)
    const dact = linBack(dx, c.act, W(i, "mlp.down_proj"), gW(i, "mlp.down_proj"));
    const { dgate, dup } = swigluBackwardRef({ dout: dact, gate: c.gate, up: c.up });
    const dn2 = add(
      linBack(dgate, c.n2, W(i, "mlp.gate_proj"), gW(i, "mlp.gate_proj")),
      linBack(dup, c.n2, W(i, "mlp.up_proj"), gW(i, "mlp.up_proj")),
    );
    const b2 = rmsnormBackwardRef({
      dy: dn2,
      x: c.x2,
      w: W(i, "post_attention_layernorm"),
      rstd: c.rstd2,
    }, { C });
    addInto(gW(i, "post_attention_layernorm"), b2.dw);
    const dx2 = add(dx, b2.dx);
    // x2 = x + o_proj(att)
    const datt = linBack(dx2, c.att, W(i, "self_attn.o_proj"), gW(i, "self_attn.o_proj"));
    const dO = transposeHeads(datt, heads(H));
    const ga = referenceAttention(problem, { q: c.qh, k: c.kh, v: c.vh, dO });
    const dq = transposeHeads(ropeRef(ga.dq!, pos, { headDim: d, theta, inverse: true }), {
      ...heads(H),
      back: true,
    });
    const dk = transposeHeads(ropeRef(ga.dk!, pos, { headDim: d, theta, inverse: true }), {
      ...heads(HKV),
      back: true,
    });
    const dv = transposeHeads(ga.dv!, { ...heads(HKV), back: true });
    const dn1 = linBack(dq, c.n1, W(i, "self_attn.q_proj"), gW(i, "self_attn.q_proj"));
    addInto(dn1, linBack(dk, c.n1, W(i, "self_attn.k_proj"), gW(i, "self_attn.k_proj")));
    addInto(dn1, linBack(dv, c.n1, W(i, "self_attn.v_proj"), gW(i, "self_attn.v_proj")));
    const b1 = rmsnormBackwardRef({
      dy: dn1,
      x: c.x,
      w: W(i, "input_layernorm"),
      rstd: c.rstd1,
    }, { C });
    addInto(gW(i, "input_layernorm"), b1.dw);
    dx = add(dx2, b1.dx);
  }
  addInto(gEmbed, scatterAddRef(dx, ids, { V: tables * V, C }));
  return { loss, grads: G };
}
