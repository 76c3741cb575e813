/**
 * The float64 reference model: gradients match central finite differences on tiny configs
 * (vanilla K=1 and PHD-CSWA K=3 with shared and flattened positions, tied and untied heads, GQA;
 * SHD and PHD with per-copy embedding tables),
 * K=1 PHD equals vanilla causal, and the loss of an untrained model is about ln(vocab).
 */
import { ok as assert } from "node:assert";
import { causal, phd, phdCswa, shd } from "../../dsl/presets.ts";
import type { AttentionSpec } from "../../dsl/spec.ts";
import { defineAttention } from "../../dsl/spec.ts";
import type { ModelConfig } from "../../runtime/model/config.ts";
import { Rng } from "../../runtime/data/rng.ts";
import { forwardBackward } from "../../reference/model.ts";
import { initParams, type Params, paramShapes } from "../../runtime/model/params.ts";
import { randomTokens, tinyModel } from "../fixtures/model.ts";

/** Smaller than the shared tiny model: finite differences run the whole model per entry. */
function tiny(o: Partial<ModelConfig> = {}): ModelConfig {
  return tinyModel({ vocab_size: 13, hidden_size: 8, intermediate_size: 12, ...o });
}

/** Checks a few entries of every parameter against central differences (relative 1e-5). */
function gradCheck(
  config: ModelConfig,
  spec: AttentionSpec,
  seed: number,
  embeddings: "shared" | "per-copy" = "shared",
) {
  const B = 2, L = 4, embedTables = embeddings === "per-copy" ? spec.K : 1;
  // std 0.5: activations large enough that every path (attention, RoPE) matters to the loss.
  const params = initParams(config, { seed, std: 0.5, embedTables });
  const r = new Rng(seed + 1);
  for (const p of Object.values(params)) {
    for (let i = 0; i < p.length; i++) p[i] += 0.1 * r.normal();
  }
  const x = randomTokens(seed + 2, B * (L + 1), config.vocab_size);
  const model = { config, spec, params, embeddings };
  const { grads } = forwardBackward(model, { tokens: x, batch: B, grads: true });
  const h = 1e-5;
  for (const [name] of paramShapes(config, { embedTables })) {
    const p = params[name], g = grads![name];
    for (let s = 0; s < 4; s++) {
      const i = r.int(p.length), keep = p[i];
      p[i] = keep + h;
      const up = forwardBackward(model, { tokens: x, batch: B }).loss;
      p[i] = keep - h;
      const down = forwardBackward(model, { tokens: x, batch: B }).loss;
      p[i] = keep;
      const fd = (up - down) / (2 * h);
      const err = Math.abs(fd - g[i]) / Math.max(1e-3, Math.abs(fd) + Math.abs(g[i]));
      assert(err < 1e-5, `${spec.name} ${name}[${i}]: analytic ${g[i]} vs finite difference ${fd}`);
    }
  }
}

Deno.test("vanilla K=1 gradients match finite differences (tied head)", () => {
  gradCheck(tiny(), causal(), 1);
});

Deno.test("PHD-CSWA K=3 gradients match finite differences (shared positions, untied head)", () => {
  gradCheck(tiny({ tie_word_embeddings: false }), phdCswa({ K: 3, W: 2, C: 2 }), 2);
});

Deno.test("PHD-CSWA K=2 gradients match finite differences (flattened positions, MHA)", () => {
  const base = phdCswa({ K: 2, W: 3, C: 2 });
  const flat = defineAttention({ ...base.input, positions: "flattened" });
  gradCheck(tiny({ num_key_value_heads: 2 }), flat, 3);
});

Deno.test("SHD K=3 with per-copy embeddings: gradients match finite differences (tied head)", () => {
  gradCheck(tiny(), shd({ K: 3 }), 6, "per-copy");
});

Deno.test("PHD K=2 with per-copy embeddings: gradients match finite differences (untied)", () => {
  gradCheck(tiny({ tie_word_embeddings: false }), phd({ K: 2 }), 7, "per-copy");
});

Deno.test("K=1 PHD is vanilla causal; K=3 differs; untrained loss is about ln(vocab)", () => {
  const config = tiny({ num_hidden_layers: 1 }), B = 3, L = 6;
  const params: Params = initParams(config, { seed: 4, std: 0.5 });
  const x = randomTokens(5, B * (L + 1), config.vocab_size);
  const loss = (spec: AttentionSpec) =>
    forwardBackward({ config, spec, params }, { tokens: x, batch: B }).loss;
  const vanilla = loss(causal());
  assert(Math.abs(loss(phd({ K: 1 })) - vanilla) < 1e-12);
  assert(Math.abs(loss(phdCswa({ K: 1 })) - vanilla) < 1e-12);
  assert(Math.abs(loss(phdCswa({ K: 3, W: 2, C: 2 })) - vanilla) > 1e-6);
  const small = initParams(config, { seed: 4 });
  const l0 =
    forwardBackward({ config, spec: causal(), params: small }, { tokens: x, batch: B }).loss;
  assert(Math.abs(l0 - Math.log(config.vocab_size)) < 0.05, `untrained loss ${l0}`);
});
