/**
 * The GPU model (runtime/model/graph.ts, its blocks runtime/model/block.ts) against the float64
 * reference model on tiny configs: loss and every parameter's gradient, for vanilla, PHD, PHD-SWA
 * and PHD-CSWA, SHD, both storage layouts, shared and flattened positions, tied and untied heads,
 * shared and per-copy embedding tables, GQA;
 * K = 1 PHD gives exactly the vanilla path's loss; one case again with the gpu adapter class's
 * kernel defaults (staged matmuls and attention, run here through a gpu-class view of this
 * adapter). Tolerance: loss to 2e-6 relative; each gradient tensor to 1e-4 of its largest
 * entry (float32 accumulation over a few hundred terms, measured ~1e-6).
 */
import { ok as assert, strictEqual } from "node:assert";
import { causal, phd, phdCswa, phdSwa, prefixLm, shd } from "../../dsl/presets.ts";
import { type AttentionSpec, respec } from "../../dsl/spec.ts";
import type { Layout } from "../../compiler/layout.ts";
import type { ModelConfig } from "../../runtime/model/config.ts";
import { readback } from "../../runtime/gpu/resources.ts";
import { ModelGraph } from "../../runtime/model/graph.ts";
import { forwardBackward } from "../../reference/model.ts";
import { initParams, ModelParams } from "../../runtime/model/params.ts";
import type { AdapterClass } from "../../runtime/gpu/device.ts";
import { gpuAsClass, gpuOnce } from "../fixtures/attention.ts";
import { randomTokens, tinyModel } from "../fixtures/model.ts";

interface Case {
  name: string;
  spec: AttentionSpec;
  config: ModelConfig;
  layout: Layout;
  B: number;
  L: number;
  /** Run with this adapter class's kernel defaults (default: the device's own). */
  adapterClass?: AdapterClass;
  /** Default "shared". */
  embeddings?: "shared" | "per-copy";
  /** The positions the loss scores (default all). */
  lossPositions?: number[];
}

async function gpuLossAndGrads(c: Case, seed: number) {
  const ctx = c.adapterClass ? await gpuAsClass(c.adapterClass) : await gpuOnce();
  const embedTables = c.embeddings === "per-copy" ? c.spec.K : 1;
  const ref = initParams(c.config, { seed, std: 0.3, embedTables });
  const params = new ModelParams(ctx, c.config, { embedTables });
  params.upload(ref);
  const graph = new ModelGraph(ctx, params, c.spec, {
    batch: c.B,
    L: c.L,
    training: true,
    attention: { layout: c.layout },
    lossPositions: c.lossPositions,
  });
  if (c.adapterClass === "gpu") strictEqual(graph.attention.params.staging, "workgroup");
  const x = randomTokens(seed + 1, c.B * (c.L + 1), c.config.vocab_size);
  graph.setBatch(x);
  const enc = ctx.gpu.device.createCommandEncoder();
  graph.record(enc, { backward: true });
  ctx.gpu.device.queue.submit([enc.finish()]);
  const { loss } = await graph.takeLoss();
  const grads: Record<string, Float32Array> = {};
  for (const [name, buf] of graph.grads) {
    grads[name] = new Float32Array(await readback(ctx.gpu.device, buf, ref[name].length * 4));
  }
  graph.destroy();
  params.destroy();
  const want = forwardBackward({
    config: c.config,
    spec: c.spec,
    params: ref,
    embeddings: c.embeddings,
  }, {
    tokens: x,
    batch: c.B,
    grads: true,
    lossPositions: c.lossPositions,
  });
  return { loss, grads, want };
}

async function check(c: Case, seed = 7) {
  const { loss, grads, want } = await gpuLossAndGrads(c, seed);
  const rel = Math.abs(loss - want.loss) / Math.abs(want.loss);
  assert(rel < 2e-6, `${c.name}: loss ${loss} vs ${want.loss} (rel ${rel.toExponential(2)})`);
  for (const [name, g] of Object.entries(want.grads!)) {
    let scale = 0, err = 0;
    for (let i = 0; i < g.length; i++) {
      scale = Math.max(scale, Math.abs(g[i]));
      err = Math.max(err, Math.abs(g[i] - grads[name][i]));
    }
    assert(
      err <= 1e-4 * scale + 1e-9,
      `${c.name}: grad ${name} max error ${err.toExponential(2)} vs scale ${
        scale.toExponential(2)
      }`,
    );
  }
}

const cfg = tinyModel();
const cases: Case[] = [
  { name: "vanilla", spec: causal(), config: cfg, layout: "interleaved", B: 2, L: 5 },
  {
    name: "phd K=3",
    spec: respec(phd(), { K: 3 }),
    config: cfg,
    layout: "interleaved",
    B: 2,
    L: 5,
  },
  {
    name: "phd-swa K=2 W=3 grouped",
    spec: respec(phdSwa(), { K: 2, params: { W: 3 } }),
    config: tinyModel({ tie_word_embeddings: false }),
    layout: "grouped",
    B: 1,
    L: 7,
  },
  {
    name: "phd-cswa K=3 W=4 C=3 flattened",
    spec: { ...respec(phdCswa(), { K: 3, params: { W: 4, C: 3 } }), positions: "flattened" },
    config: tinyModel({ num_key_value_heads: 2 }),
    layout: "interleaved",
    B: 2,
    L: 6,
  },
  {
    name: "phd-cswa K=2 grouped",
    spec: respec(phdCswa(), { K: 2, params: { W: 2, C: 4 } }),
    config: cfg,
    layout: "grouped",
    B: 2,
    L: 9,
  },
  // The gpu class: tests/kernels/attention_pipelines_test.ts checks the same attention kernels
  // (spec, K, layout, head dim 8), whose cold compile on llvmpipe's GL backend takes tens of
  // seconds; Mesa's shader cache then serves this file.
  {
    name: "phd-cswa K=3 grouped, gpu-class kernels",
    spec: phdCswa({ K: 3, W: 3, C: 4 }),
    config: cfg,
    layout: "grouped",
    B: 2,
    L: 9,
    adapterClass: "gpu",
  },
  {
    name: "shd K=3 per-copy embeddings (tied head: copy 0's table)",
    spec: shd({ K: 3 }),
    config: cfg,
    layout: "interleaved",
    B: 2,
    L: 5,
    embeddings: "per-copy",
  },
  {
    name: "phd-swa K=2 W=2 per-copy embeddings grouped (untied)",
    spec: respec(phdSwa(), { K: 2, params: { W: 2 } }),
    config: tinyModel({ tie_word_embeddings: false }),
    layout: "grouped",
    B: 2,
    L: 6,
    embeddings: "per-copy",
  },
  // A prefix-LM trained with --allow-leak: only the positions that cannot see their targets
  // (compiler/analysis/leaks.ts gives P-1 .. L-1 for a prefix of P) are scored.
  {
    name: "prefix-LM P=4 scoring positions 3.. (--allow-leak), grouped",
    spec: respec(prefixLm(), { K: 2, params: { P: 4 } }),
    config: cfg,
    layout: "grouped",
    B: 2,
    L: 7,
    lossPositions: [3, 4, 5, 6],
  },
];

for (const c of cases) {
  Deno.test(`GPU model matches the float64 reference: ${c.name}`, () => check(c));
}

Deno.test("K = 1 PHD is bit-for-bit the vanilla path's loss", async () => {
  const base = { config: cfg, layout: "interleaved" as const, B: 2, L: 6 };
  const a = await gpuLossAndGrads({ ...base, name: "causal", spec: causal() }, 3);
  const b = await gpuLossAndGrads({ ...base, name: "phd K=1", spec: respec(phd(), { K: 1 }) }, 3);
  strictEqual(a.loss, b.loss);
});
