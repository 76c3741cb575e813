/**
 * Forward and backward kernels vs the float64 reference for every preset of dsl/presets.ts, both
 * layouts, K = 1..5, awkward lengths (L not a multiple of the tile, one token), several tiles,
 * grouped-query attention, batches, and the dense fallback.
 */
import { PRESETS } from "../../dsl/presets.ts";
import {
  causal,
  documentMask,
  phd,
  phdCswa,
  phdSwa,
  prefixLm,
  shd,
  slidingWindow,
} from "../../dsl/presets.ts";
import { LAYOUTS } from "../../compiler/layout.ts";
import { checkCase } from "../fixtures/attention.ts";

const SMALL = [
  causal(),
  phd({ K: 3 }),
  phdSwa({ K: 3, W: 3 }),
  phdCswa({ K: 3, W: 3, C: 4 }),
  shd({ K: 3 }),
  slidingWindow({ W: 5 }),
  prefixLm({ P: 5 }),
  documentMask({ docs: [0, 7, 11] }),
];

Deno.test("every preset name is covered", () => {
  const covered = new Set(SMALL.map((s) => s.baseName));
  for (const [name, make] of Object.entries(PRESETS)) {
    if (!covered.has(make().baseName)) throw new Error(`preset ${name} is not tested`);
  }
});

for (const spec of SMALL) {
  for (const layout of spec.K === 1 ? ["interleaved" as const] : LAYOUTS) {
    Deno.test(`${spec.name} ${layout}: fused 8x8 tiles, L = 13, GQA 4/2`, async () => {
      await checkCase({
        spec,
        L: 13,
        layout,
        heads: 4,
        kvHeads: 2,
        config: { tileQ: 8, tileK: 8 },
      });
    });
  }
}

Deno.test("phd-cswa grouped: dense fallback, 8x16 tiles, batch 2", async () => {
  await checkCase({
    spec: phdCswa({ K: 3, W: 3, C: 4 }),
    L: 11,
    layout: "grouped",
    batch: 2,
    config: { variant: "dense", tileQ: 8, tileK: 16 },
  });
});

Deno.test("phd-swa interleaved: 16x8 tiles, default-size tile elsewhere", async () => {
  await checkCase({ spec: phdSwa({ K: 2, W: 4 }), L: 21, config: { tileQ: 16, tileK: 8 } });
  await checkCase({ spec: phdSwa({ K: 2, W: 4 }), L: 21, heads: 1 });
});

for (let K = 1; K <= 5; K++) {
  Deno.test(`phd K = ${K}: both layouts, L = 7`, async () => {
    for (const layout of LAYOUTS) {
      await checkCase({ spec: phd({ K }), L: 7, layout, config: { tileQ: 8, tileK: 8 } });
    }
  });
}

Deno.test("one token (K = 1, L = 1) and one position of K = 4", async () => {
  await checkCase({ spec: causal(), L: 1 });
  await checkCase({ spec: phdCswa({ K: 4, W: 2, C: 2 }), L: 1, layout: "grouped" });
});
