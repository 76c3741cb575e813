/**
 * The Hugging Face side of a checkpoint (docs/DESIGN.md 4): the `config.json` object is a plain
 * Llama's for K = 1 and another model type for K > 1, and the safetensors metadata carries
 * `format: "pt"`, which Hugging Face's loader asks for. The PyTorch round trip (torch_roundtrip_test)
 * checks that both sides write the same file. Per-copy embedding tables round-trip as one stacked
 * `model.embed_tokens.weight` `[K·V, C]` and are named in config.json's `phd` (shared ones are not,
 * so the two sides still agree).
 */
import { deepStrictEqual as assertEquals, throws } from "node:assert/strict";
import { DEFAULT_CONFIG } from "../../runtime/model/config.ts";
import { hfConfig } from "../../runtime/io/hf_config.ts";
import { decodeCheckpoint, encodeCheckpoint } from "../../runtime/io/checkpoint.ts";
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

Deno.test("per-copy embeddings: [K·V, C] table round-trips; config.json names them; shapes checked", () => {
  const phd = { ...DEFAULT_CONFIG.phd, K: 2, variant: "shd", embeddings: "per-copy" as const };
  const params = Object.fromEntries(
    Object.entries(initParams(model, { seed: 2, embedTables: 2 })).map((
      [k, v],
    ) => [k, Float32Array.from(v)]),
  );
  const bytes = encodeCheckpoint({ model, phd, tokenizer: "bytes", params });
  const st = decodeSafetensors(bytes);
  assertEquals(st.tensors.get("model.embed_tokens.weight")!.shape, [2 * model.vocab_size, 16]);
  const ck = decodeCheckpoint(bytes);
  assertEquals([ck.phd.embeddings, ck.spec.name], ["per-copy", "shd_k2"]);
  assertEquals(ck.params["model.embed_tokens.weight"], params["model.embed_tokens.weight"]);
  assertEquals(hfConfig({ model, phd, tokenizer: "bytes" }).phd, {
    K: 2,
    variant: "shd",
    W: phd.W,
    C: phd.C,
    positions: "shared",
    embeddings: "per-copy",
  });
  const shared = hfConfig({ model, phd: { ...phd, embeddings: "shared" }, tokenizer: "bytes" });
  assertEquals("embeddings" in (shared.phd as object), false);
  // A shared-table model's tensors under a per-copy phd section do not fit.
  const one = Object.fromEntries(
    Object.entries(initParams(model, { seed: 2 })).map(([k, v]) => [k, Float32Array.from(v)]),
  );
  throws(
    () => encodeCheckpoint({ model, phd, tokenizer: "bytes", params: one }),
    /cannot save|shape/,
  );
});
