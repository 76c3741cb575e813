/**
 * The dense attention of python/phd_torch (what runs where flex_attention is missing) equals a
 * plain float64 softmax over each row's allowed keys, to 1e-12, for a score modifier (soft-capping),
 * an ALiBi-style one of the head, and a mask with fully masked rows (zero output, finite gradients).
 */
import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import { join } from "node:path";
import { flexModule } from "../../compiler/codegen/flex.ts";
import { defineAttention, exp2, phdBase, softcap, toFloat } from "../../dsl/mod.ts";
import type { Layout } from "../../compiler/layout.ts";
import { runPython } from "../fixtures/python.ts";
import { needs } from "../fixtures/packages.ts";

const specs = [
  defineAttention({
    name: "softcap_phd",
    K: 3,
    mask: phdBase,
    score: ({ score }) => softcap(score, 5),
  }),
  defineAttention({
    name: "alibi_phd",
    K: 2,
    mask: phdBase,
    score: ({ score, head, q, k }) =>
      score.sub(exp2(head.add(1).mul(-1)).mul(toFloat(q.pos.sub(k.pos)))),
  }),
  defineAttention({
    name: "late_start",
    K: 2,
    bidirectional: "copies",
    mask: ({ q, k }) => q.pos.ge(2).and(k.pos.le(q.pos)),
  }),
];

Deno.test(
  needs(
    "python3-torch",
    "phd_torch dense attention equals a per-row float64 softmax; masked rows give zeros",
    async () => {
      const dir = await Deno.makeTempDir({ prefix: "dense_" });
      const jobs: [string, number][] = [];
      for (const [i, spec] of specs.entries()) {
        for (const layout of ["interleaved", "grouped"] as Layout[]) {
          const path = join(dir, `m${i}_${layout}.py`), L = 5;
          await Deno.writeTextFile(
            path,
            flexModule(spec, { layout, L, analysis: "(test)", command: "dense_attention_test" }),
          );
          jobs.push([path, L]);
        }
      }
      const r = await runPython("tests/export/check_attention.py", JSON.stringify(jobs));
      assertEquals(r.code, 0, r.stderr);
      const got = JSON.parse(r.stdout);
      assert(got.worst <= 1e-12, `dense attention off by ${got.worst}`);
      assert(got.finite_grads, "a fully masked row gave non-finite gradients");
      await Deno.remove(dir, { recursive: true });
    },
  ),
);
