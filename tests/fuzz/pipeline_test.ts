/**
 * Fuzzing (fast-check) across the pipeline: random DSL masks (floor division, modulo, min/max,
 * and/or/not over copies, positions, hidden indices, chunks and segment tables), some with a score
 * modifier, bidirectional ones included -> the compiler's analysis (causality, retention, prefill,
 * tiles) -> WGSL -> the device, forward and backward checked against the float64 reference
 * (tests/fixtures/attention.ts `checkCase`). Every generated case either analyses and matches, or
 * the analysis refuses it with one line. Few runs: each one compiles and runs kernels on llvmpipe.
 */
import fc from "fast-check";
import { ok as assert } from "node:assert";
import { softcap, toFloat } from "../../dsl/expr.ts";
import { defineAttention } from "../../dsl/spec.ts";
import { analyze } from "../../compiler/analysis/analyze.ts";
import { checkCase, randomMaskSpec } from "../fixtures/attention.ts";

const cases = fc.record({
  seed: fc.integer({ min: 100, max: 1_000_000 }),
  K: fc.integer({ min: 1, max: 3 }),
  L: fc.integer({ min: 2, max: 9 }),
  table: fc.boolean(),
  score: fc.constantFrom("none", "softcap", "bias"),
  layout: fc.constantFrom("interleaved" as const, "grouped" as const),
  tile: fc.constantFrom(4, 8),
});

Deno.test("random specs: analysis, WGSL and the device agree with the float64 reference", async () => {
  await fc.assert(
    fc.asyncProperty(cases, async (c) => {
      const base = randomMaskSpec(c.seed, c.K, { table: c.table });
      const spec = c.score === "none" ? base : defineAttention({
        ...base.input,
        name: `${base.name}_${c.score}`,
        score: c.score === "softcap"
          ? ({ score }) => softcap(score.mul(4), 3)
          : ({ score, q, k }) => score.add(toFloat(q.pos.sub(k.pos)).mul(-0.25)),
      });
      try {
        analyze(spec, { L: c.L, tile: c.tile, layout: c.layout });
      } catch (e) {
        assert(e instanceof Error && !e.message.includes("\n"), String(e));
      }
      await checkCase({
        spec,
        L: c.L,
        layout: c.layout,
        config: { tileQ: c.tile, tileK: c.tile },
        seed: c.seed,
      });
    }),
    { numRuns: 3 },
  );
});
