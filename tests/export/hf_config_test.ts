/**
 * The Hugging Face side of a checkpoint (docs/DESIGN.md 4): the `config.json` object is a plain
 * Llama's for K = 1 and another model type for K > 1, and the safetensors metadata carries
 * `format: "pt"`, which Hugging Face's loader asks for. The PyTorch round trip (torch_roundtrip_test)
 * checks that both sides write the same file.
 */
import { deepStrictEqual as assertEquals } from "node:assert/strict";
import { DEFAULT_CONFIG } from "../../runtime/model/config.ts";
import { hfConfig } from "../../runtime/io/hf_config.ts";
import { encodeCheckpoint } from "../../runtime/io/checkpoint.ts";
import { decodeSafetensors } from "../../runtime/io/safetensors.ts";
import { initParams } from "../../runtime/model/params.ts";

const model = { ...DEFAULT_CONFIG.model, hidden_size: 16, intermediate_size: 24 };

Deno.test("config.json: K = 1 is a plain Llama, K > 1 another model type; metadata has format pt", () => {
  const vanilla = { ...DEFAULT_CONFIG.phd, K: 1, variant: "causal" };
  const one = hfConfig({ model, phd: vanilla, tokenizer: "bytes", context: 32 });
  assertEquals([one.architectures, one.model_type], [["LlamaForCausalLM"], "llama"]);
  assertEquals([one.head_dim, one.max_position_embeddings, one.hidden_act], [4, 32, "silu"]);
  const flat = { ...DEFAULT_CONFIG.phd, K: 3, positions: "flattened" as const };
  const three = hfConfig({ model, phd: flat, tokenizer: "bytes", context: 32 });
  assertEquals([three.model_type, three.max_position_embeddings], ["phd_llama", 96]);
  const params = Object.fromEntries(
    Object.entries(initParams(model, { seed: 1 })).map(([k, v]) => [k, Float32Array.from(v)]),
  );
  const bytes = encodeCheckpoint({ model, phd: vanilla, tokenizer: "bytes", params });
  assertEquals(decodeSafetensors(bytes).metadata.format, "pt");
});
