/**
 * Forward and backward kernels vs the float64 reference for random DSL masks, score modifiers,
 * user masks with fully masked rows (output 0, zero gradients, no NaN), head dims 48/64/128, and
 * workgroup staging.
 */
import { ok as assert } from "node:assert";
import { softcap } from "../../dsl/expr.ts";
import { phdCswa } from "../../dsl/presets.ts";
import { defineAttention } from "../../dsl/spec.ts";
import { FlashAttention } from "../../runtime/kernels/attention.ts";
import { checkCase, gpuOnce, randomArray, randomMaskSpec, rng } from "../fixtures/attention.ts";

for (const seed of [3, 7, 12, 21]) {
  Deno.test(`random mask ${seed}: fused, both layouts`, async () => {
    const spec = randomMaskSpec(seed, 1 + (seed % 4), { table: seed === 12 });
    await checkCase({ spec, L: 9, layout: "interleaved", config: { tileQ: 8, tileK: 8 } });
    await checkCase({ spec, L: 9, layout: "grouped", config: { tileQ: 8, tileK: 4 }, seed });
  });
}

Deno.test("soft-capped PHD-CSWA with GQA: score_mod gradients", async () => {
  const spec = defineAttention({
    ...phdCswa({ K: 2 }).input,
    name: "capped_cswa",
    params: { W: 3, C: 4 },
    score: ({ score }) => softcap(score.mul(8), 2),
  });
  await checkCase({ spec, L: 10, layout: "grouped", heads: 4, kvHeads: 1 });
});

const holes = defineAttention({
  name: "holes",
  K: 2,
  params: { P: 3 },
  bidirectional: true,
  description: "rows at positions p % P == 1 attend nothing",
  mask: ({ q, k, p }) => k.pos.le(q.pos).and(q.pos.mod(p.P).ne(1)),
});

Deno.test("fully masked rows: output 0, zero gradients, no NaN", async () => {
  await checkCase({ spec: holes, L: 11, layout: "grouped", config: { tileQ: 4, tileK: 8 } });
  const { gpu, cache } = await gpuOnce();
  const L = 11, N = 2 * L, d = 32, r = rng(5);
  const x = {
    q: randomArray(r, N * d),
    k: randomArray(r, N * d),
    v: randomArray(r, N * d),
    dO: randomArray(r, N * d),
  };
  for (const variant of ["fused", "dense"] as const) {
    const fa = new FlashAttention(gpu, cache, holes, { headDim: d, variant });
    const got = await fa.run(x, { L, heads: 1 });
    for (const a of [got.o, got.lse, got.dq!, got.dk!, got.dv!]) {
      assert(a.every(Number.isFinite), `${variant}: non-finite values`);
    }
    for (let s = 0; s < N; s++) {
      const masked = Math.floor(s / 2) % 3 === 1; // interleaved: pos = floor(s / K)
      if (!masked) continue;
      for (let t = 0; t < d; t++) {
        assert(got.o[s * d + t] === 0 && got.dq![s * d + t] === 0, `${variant}: row ${s} not 0`);
      }
    }
  }
});

for (const headDim of [48, 64, 128]) {
  Deno.test(`head dim ${headDim}`, async () => {
    await checkCase({
      spec: phdCswa({ K: 3, W: 3, C: 4 }),
      L: headDim === 128 ? 6 : 9,
      layout: "grouped",
      heads: 1,
      headDim,
    });
  });
}

Deno.test("workgroup staging (the real-GPU path), fused and dense", async () => {
  const spec = phdCswa({ K: 3, W: 3, C: 4 });
  await checkCase({
    spec,
    L: 9,
    layout: "grouped",
    config: { staging: "workgroup", tileQ: 8, tileK: 16 },
  });
  await checkCase({
    spec,
    L: 9,
    layout: "interleaved",
    kvHeads: 1,
    config: { staging: "workgroup", variant: "dense", tileQ: 16, tileK: 8 },
  });
});
