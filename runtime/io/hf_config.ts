/**
 * The Hugging Face style `config.json` written beside every checkpoint (docs/DESIGN.md 4), so a
 * K = 1 checkpoint opens as a plain Llama (`LlamaForCausalLM`) and a PHD one names its expansion.
 * python/phd_torch (io.py) writes the same object for the checkpoints it saves (tests/export compare
 * them). Pure: the host layer writes the file.
 */
import { embeddingTables, type ModelConfig, type PhdConfig } from "../model/config.ts";

/** The `config.json` object of a checkpoint. */
export function hfConfig(c: {
  model: ModelConfig;
  phd: PhdConfig;
  tokenizer: string;
  context?: number;
}): Record<string, unknown> {
  const m = c.model, K = c.phd.K;
  // K > 1 is not a plain Llama: another model type makes AutoModel refuse instead of misreading it.
  const plain = K === 1;
  return {
    architectures: [plain ? "LlamaForCausalLM" : "PhdLlamaForCausalLM"],
    model_type: plain ? "llama" : "phd_llama",
    vocab_size: m.vocab_size,
    hidden_size: m.hidden_size,
    intermediate_size: m.intermediate_size,
    num_hidden_layers: m.num_hidden_layers,
    num_attention_heads: m.num_attention_heads,
    num_key_value_heads: m.num_key_value_heads,
    head_dim: m.hidden_size / m.num_attention_heads,
    hidden_act: "silu",
    rms_norm_eps: m.rms_norm_eps,
    rope_theta: m.rope_theta,
    tie_word_embeddings: m.tie_word_embeddings,
    attention_bias: false,
    mlp_bias: false,
    torch_dtype: "float32",
    ...(c.context === undefined ? {} : {
      max_position_embeddings: c.phd.positions === "flattened" ? c.context * K : c.context,
    }),
    phd: {
      K,
      variant: c.phd.variant,
      W: c.phd.W,
      C: c.phd.C,
      positions: c.phd.positions,
      // Per-copy tables stack K tables in embed_tokens [K·V, C] (docs/DESIGN.md 4): no Llama
      // loader reads that, so it is named here (and K > 1 is never model_type llama).
      ...(embeddingTables(c.phd) > 1 ? { embeddings: c.phd.embeddings } : {}),
    },
    tokenizer: c.tokenizer,
  };
}
