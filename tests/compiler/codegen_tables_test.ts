/**
 * The generator-side tables the runtime relies on: each kernel family's uniform table (the WGSL
 * struct in its source, the packed bytes, the manifest's offsets), and the prefill key ranges of
 * the coordinate-attention kernel (compiler/analysis/key_ranges.ts) against brute force on the
 * exact mask: every allowed pair inside a range of its query tile, `full` ranges allowed throughout.
 */
import { deepStrictEqual as assertEquals, ok, throws } from "node:assert/strict";
import { PRESETS } from "../../dsl/presets.ts";
import { specBindings } from "../../dsl/eval.ts";
import { maskOracle } from "../../compiler/analysis/abstract.ts";
import { openRanges, prefillRanges } from "../../compiler/analysis/key_ranges.ts";
import {
  attentionParams,
  attentionUniforms,
  buildAttentionKernel,
} from "../../compiler/codegen/attention_kernels.ts";
import { coordAttentionKernel, packRanges } from "../../compiler/codegen/coord_attention.ts";
import {
  packUniforms,
  uniformFields,
  uniformLayout,
  uniformStruct,
} from "../../compiler/codegen/kernel_source.ts";
import { randomMaskSpec } from "../fixtures/attention.ts";

Deno.test("uniform tables: struct, offsets and packed bytes agree", () => {
  const spec = PRESETS["phd-cswa"]();
  const l = uniformLayout([{ name: "a", type: "u32" }, { name: "s", type: "f32" }], spec);
  assertEquals(l.spec, ["p_C", "p_W"]);
  assertEquals(
    uniformStruct(l),
    "struct Uniforms {\n  a: u32,\n  s: f32,\n  p_C: i32,\n  p_W: i32,\n}",
  );
  assertEquals(uniformFields(l), {
    fields: [
      { name: "a", type: "u32", offset: 0 },
      { name: "s", type: "f32", offset: 4 },
      { name: "p_C", type: "i32", offset: 8 },
      { name: "p_W", type: "i32", offset: 12 },
    ],
    bytes: 16,
  });
  const bytes = packUniforms(l, { a: 0xffffffff, s: 0.5 }, [32, -3]);
  const v = new DataView(bytes.buffer);
  assertEquals(bytes.length, 16);
  assertEquals([v.getUint32(0, true), v.getFloat32(4, true)], [0xffffffff, 0.5]);
  assertEquals([v.getInt32(8, true), v.getInt32(12, true)], [32, -3]);
  throws(() => packUniforms(l, { a: -1, s: 0 }, [1, 2]), /uniform a = -1 is not a u32/);
  throws(() => packUniforms(l, { a: 1, s: 0 }, [2 ** 31, 2]), /uniform p_C = 2147483648/);
  throws(() => packUniforms(l, { a: 1, s: 0 }, [1]), /2 spec uniform values expected, got 1/);
});

Deno.test("both kernel families declare the struct of their table", () => {
  for (const spec of [PRESETS["causal"](), PRESETS["phd-cswa"](), PRESETS["document"]()]) {
    const u = attentionUniforms(spec);
    for (const kind of ["forward", "backward_dq", "backward_dkv"] as const) {
      const k = buildAttentionKernel(kind, attentionParams(spec, 16));
      assertEquals(k.uniforms, u);
      ok(k.code.includes(`\n${uniformStruct(u)}\n@group(0) @binding(0) var<uniform> U`), kind);
    }
    assertEquals(u.fixed.map((f) => f.name), [
      "N",
      "L",
      "H",
      "HKV",
      "scale",
      "rows",
      "cols",
      "tq",
      "tk",
    ]);
    const c = coordAttentionKernel({ spec, headDim: 16, tileQ: 4 });
    ok(c.code.includes(`\n${uniformStruct(c.uniforms)}\n@group(0) @binding(0) var<uniform> U`));
    assertEquals(c.uniforms.spec, u.spec);
    assertEquals(c.workgroupSize, 4);
  }
});

Deno.test("prefill key ranges hold every allowed pair; full ranges only allowed ones", () => {
  const specs = [
    ...Object.values(PRESETS).map((f) => f()),
    randomMaskSpec(5, 3),
    randomMaskSpec(11, 2, { table: true }),
  ];
  let full = 0, skipped = 0;
  for (const spec of specs) {
    const K = spec.K, oracle = maskOracle(spec.mask, specBindings(spec));
    for (const [L, last] of [[23, 7], [40, 40]]) {
      // A prefill-shaped row set: every original, then the hidden copies of the last positions.
      const rows: [number, number][] = [];
      for (let p = 0; p < L; p++) rows.push([0, p]);
      for (let p = L - last; p < L; p++) for (let c = 1; c < K; c++) rows.push([c, p]);
      const coords = Int32Array.from(rows.flat());
      for (const [tileQ, tileK] of [[4, 4], [8, 3], [16, 32]]) {
        const ranges = prefillRanges(oracle, K, coords, { tileQ, tileK });
        assertEquals(ranges.length, Math.ceil(rows.length / tileQ));
        for (const list of ranges) {
          full += list.filter((x) => x.full).length;
          skipped += rows.length - list.reduce((a, x) => a + x.end - x.start, 0);
        }
        rows.forEach(([qc, qp], r) => {
          const list = ranges[Math.floor(r / tileQ)];
          rows.forEach(([kc, kp], s) => {
            const at = list.find((x) => x.start <= s && s < x.end);
            const allowed = oracle.allowed(qc, qp, kc, kp);
            const what = `${spec.name} L=${L} ${tileQ}x${tileK}: (${qc},${qp}) -> (${kc},${kp})`;
            if (allowed) ok(at, `${what} is allowed but in no range`);
            if (at?.full) ok(allowed, `${what} is in a full range but masked`);
          });
        });
      }
    }
  }
  ok(
    full > 0 && skipped > 0,
    `ranges neither skip nor mark full: ${full} full, ${skipped} skipped`,
  );
});

Deno.test("packed key ranges: tile offsets, then (start, end | full) pairs; open ends clamp", () => {
  assertEquals(
    [...packRanges([[{ start: 0, end: 4, full: true }, { start: 8, end: 9, full: false }], []])],
    [3, 7, 7, 0, 0x80000004, 8, 9],
  );
  assertEquals([...packRanges(openRanges(2))], [3, 5, 7, 0, 0x7fffffff, 0, 0x7fffffff]);
});
