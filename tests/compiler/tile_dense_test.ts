/**
 * The dense mask read off the tile classes (compiler/analysis/tiles.ts `tileDenseMask`, what the
 * playground draws) equals the point interpreter's dense mask (dsl/eval.ts `denseMask`) in both
 * layouts, for the presets and random DSL masks over awkward tile sizes; `reorderMask`
 * (viz/mask_picture.ts) moves a mask between the layouts' orders and back.
 */
import { deepStrictEqual } from "node:assert/strict";
import { denseMask } from "../../dsl/eval.ts";
import { PRESETS } from "../../dsl/presets.ts";
import { respec } from "../../dsl/spec.ts";
import { LAYOUTS } from "../../compiler/layout.ts";
import { classifyTiles, tileDenseMask } from "../../compiler/analysis/tiles.ts";
import { reorderMask } from "../../viz/mask_picture.ts";
import { randomMaskSpec } from "../fixtures/attention.ts";

Deno.test("tileDenseMask equals the dense mask in both layouts; reorderMask round-trips", () => {
  const specs = [
    ...Object.values(PRESETS).map((f) => f()),
    respec(PRESETS["phd-cswa"](), { K: 3, params: { W: 3, C: 4 } }),
    ...Array.from({ length: 12 }, (_, i) => randomMaskSpec(100 + i, 1 + (i % 4))),
  ];
  for (const spec of specs) {
    for (const [L, tile] of [[13, 5], [16, 8], [9, 32]]) {
      const canonical = denseMask(spec, L);
      for (const layout of LAYOUTS) {
        const map = classifyTiles(spec, { L, tileQ: tile, tileK: tile, layout });
        const got = tileDenseMask(spec, map);
        const what = `${spec.name} L=${L} tile=${tile} ${layout}`;
        deepStrictEqual(got, reorderMask(canonical, layout), what);
        deepStrictEqual(reorderMask(got, "interleaved"), canonical, what);
      }
    }
  }
});
