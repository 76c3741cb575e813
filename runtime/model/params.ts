/**
 * The model's parameters as named tensors: every name and shape in checkpoint order (Hugging Face
 * Llama names, linear layers `[out, in]`, docs/DESIGN.md 4) and the seeded initialisation that the
 * GPU trainer and the float64 reference both start from.
 */
import type { ModelConfig } from "./config.ts";
import { Rng } from "../data/batches.ts";

/** Named parameters (or gradients), Hugging Face Llama names. */
export type Params = Record<string, Float64Array>;

/** Head dim of a config. */
export function headDim(c: ModelConfig): number {
  return c.hidden_size / c.num_attention_heads;
}

/** Every parameter's name and shape (`[out, in]` for linear layers), in checkpoint order. */
export function paramShapes(c: ModelConfig): Map<string, number[]> {
  const C = c.hidden_size, d = headDim(c), H = c.num_attention_heads;
  const HKV = c.num_key_value_heads, I = c.intermediate_size;
  const s = new Map<string, number[]>([["model.embed_tokens.weight", [c.vocab_size, C]]]);
  for (let i = 0; i < c.num_hidden_layers; i++) {
    const p = `model.layers.${i}.`;
    s.set(p + "input_layernorm.weight", [C]);
    s.set(p + "self_attn.q_proj.weight", [H * d, C]);
    s.set(p + "self_attn.k_proj.weight", [HKV * d, C]);
    s.set(p + "self_attn.v_proj.weight", [HKV * d, C]);
    s.set(p + "self_attn.o_proj.weight", [C, H * d]);
    s.set(p + "post_attention_layernorm.weight", [C]);
    s.set(p + "mlp.gate_proj.weight", [I, C]);
    s.set(p + "mlp.up_proj.weight", [I, C]);
    s.set(p + "mlp.down_proj.weight", [C, I]);
  }
  s.set("model.norm.weight", [C]);
  if (!c.tie_word_embeddings) s.set("lm_head.weight", [c.vocab_size, C]);
  return s;
}

/** Initial parameters: norms 1, matrices normal(0, std) (default 0.02), from a seed. */
export function initParams(c: ModelConfig, o: { seed: number; std?: number }): Params {
  const rng = new Rng(o.seed), std = o.std ?? 0.02, out: Params = {};
  for (const [name, shape] of paramShapes(c)) {
    const a = new Float64Array(shape.reduce((x, y) => x * y, 1));
    if (shape.length === 1) a.fill(1);
    else for (let i = 0; i < a.length; i++) a[i] = std * rng.normal();
    out[name] = a;
  }
  return out;
}
